@echo off
rem zonekit agent installer for zone @@ZONE@@ (windows/amd64, zac @@VERSION@@).
rem Installs or upgrades zac.exe, places the zone CA certificate, registers
rem the device when it is not registered and runs the agent as the
rem zonekit-agent Windows service (automatic start, restarted on failure).
rem Never prompts; exit 0 when there is nothing to do. Run as administrator
rem from the unzipped folder (a login script:
rem call \\server\share\zonekit-agent\install.cmd).
setlocal EnableExtensions EnableDelayedExpansion
set "SRC=%~dp0"
set "PREFIX=%ProgramFiles%\zonekit-agent"
set "AGENT_HOME=%ProgramData%\zonekit-agent"
set "LOG=%AGENT_HOME%\logs\install.log"
set CHANGED=0
if not exist "%AGENT_HOME%\logs" mkdir "%AGENT_HOME%\logs" || exit /b 1
if not exist "%PREFIX%" mkdir "%PREFIX%" || exit /b 1
fc /b "%SRC%zac.exe" "%PREFIX%\zac.exe" >nul 2>&1
if errorlevel 1 (
	rem A running service holds zac.exe open: stop it for the upgrade.
	sc query zonekit-agent >nul 2>&1 && (sc stop zonekit-agent >nul 2>&1 & call :waitstop)
	copy /y "%SRC%zac.exe" "%PREFIX%\zac.exe" >nul || (call :log error: cannot install "%PREFIX%\zac.exe" & exit /b 1)
	call :log installed "%PREFIX%\zac.exe"
	set CHANGED=1
)
set "ZAC=%PREFIX%\zac.exe"
"%ZAC%" --home "%AGENT_HOME%" zone-config >nul 2>&1
if errorlevel 1 (
	copy /y "%SRC%cacert.pem" "%AGENT_HOME%\cacert.pem" >nul || (call :log error: cannot write cacert.pem & exit /b 1)
	set KEYARG=
	if exist "%SRC%regkey" (set /p KEY=<"%SRC%regkey" & set KEYARG=-k !KEY!)
	set REG=0
	for /f "usebackq delims=" %%s in ("%SRC%servers") do (
		if !REG!==0 (
			"%ZAC%" --home "%AGENT_HOME%" register --cacert "%AGENT_HOME%\cacert.pem" !KEYARG! %%s >>"%LOG%" 2>&1 && (set REG=1 & call :log registered with %%s)
		)
	)
	if !REG!==0 (call :log error: could not register with any zone server & exit /b 1)
	set CHANGED=1
)
rem Earlier packs scheduled the agent as a task: the service replaces it.
schtasks /query /tn zonekit-agent >nul 2>&1 && (schtasks /end /tn zonekit-agent >nul 2>&1 & schtasks /delete /tn zonekit-agent /f >nul 2>&1 & call :log removed the zonekit-agent scheduled task, replaced by the service)
sc query zonekit-agent >nul 2>&1
if errorlevel 1 (
	sc create zonekit-agent binPath= "\"%ZAC%\" --home \"%AGENT_HOME%\" agent --interval @@INTERVAL@@" start= auto DisplayName= "zonekit agent" >nul || (call :log error: cannot create the zonekit-agent service & exit /b 1)
	sc description zonekit-agent "zonekit endpoint agent: refreshes with the zone and deploys the packages assigned to this device" >nul
	sc failure zonekit-agent reset= 86400 actions= restart/60000/restart/60000/restart/600000 >nul
	call :log created the zonekit-agent service
	set CHANGED=1
)
sc query zonekit-agent | find "RUNNING" >nul
if errorlevel 1 (
	sc start zonekit-agent >nul || (call :log error: cannot start the zonekit-agent service & exit /b 1)
	call :log started the zonekit-agent service
	set CHANGED=1
)
if !CHANGED!==0 call :log nothing to do: zac is current and the device is registered
exit /b 0
:log
echo %DATE% %TIME% %* >>"%LOG%"
echo zonekit-agent: %*
exit /b 0
:waitstop
rem Up to 30 s for the service to stop (ping waits about a second a try).
for /l %%i in (1,1,30) do (
	sc query zonekit-agent | find "STOPPED" >nul && exit /b 0
	ping -n 2 127.0.0.1 >nul
)
exit /b 0
