[Initialization]
Upgrade Mode=false
Installed Version=0
New Tree=YES
Tree Name=SILENT-WIN
Admin Context=Novell
Admin Login Name=Admin
Admin Password=novell
Install as Service=YES
NDS Location=CHANGEME
Require TLS=no
