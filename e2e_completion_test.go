package zonekit_test

import (
	"fmt"
	"os"
	"os/exec"
)

// shellOK is the shell:NAME condition: whether the shell NAME is
// installed, for the scripts that drive completion through real bash, zsh
// and fish. CI installs them (.ci/run), so there a missing shell fails
// the script instead of skipping it.
func shellOK(name string) (bool, error) {
	_, err := exec.LookPath(name)
	if err == nil && name == "bash" {
		// cobra's bash script needs bash-completion's functions.
		_, err = os.Stat("/usr/share/bash-completion/bash_completion")
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			return false, fmt.Errorf("%s is missing but CI=true: .ci/run installs it", name)
		}
		return false, nil
	}
	return true, nil
}
