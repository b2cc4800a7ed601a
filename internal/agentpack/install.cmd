@echo off
rem zonekit agent installer for zone @@ZONE@@ (windows/amd64, zac @@VERSION@@).
rem Installs or upgrades zac.exe, places the zone CA certificate, registers
rem the device when it is not registered and schedules the agent. Never
rem prompts; exit 0 when there is nothing to do. Run from the unzipped
rem folder (a login script: call \\server\share\zonekit-agent\install.cmd).
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
schtasks /query /tn zonekit-agent >nul 2>&1
if errorlevel 1 (
	schtasks /create /tn zonekit-agent /sc onstart /ru SYSTEM /rl HIGHEST /f /tr "\"%ZAC%\" --home \"%AGENT_HOME%\" agent --interval @@INTERVAL@@" >nul 2>&1 || (call :log error: cannot schedule the agent & exit /b 1)
	schtasks /run /tn zonekit-agent >nul 2>&1
	call :log scheduled and started the zonekit-agent task
	set CHANGED=1
)
if !CHANGED!==0 call :log nothing to do: zac is current and the device is registered
exit /b 0
:log
echo %DATE% %TIME% %* >>"%LOG%"
echo zonekit-agent: %*
exit /b 0
