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
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("CI") == "true" {
			return false, fmt.Errorf("%s is missing but CI=true: .ci/run installs it", name)
		}
		return false, nil
	}
	return true, nil
}
