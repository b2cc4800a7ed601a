package ui

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/AlecAivazis/survey/v2"
	"github.com/AlecAivazis/survey/v2/terminal"

	"zonekit/internal/errkind"
)

// Prompter asks a person questions. Commands hold one so tests can fake it.
type Prompter interface {
	Input(message, def string) (string, error)
	Password(message string) (string, error)
	Select(message string, options []string, def string) (string, error)
	Confirm(message string, def bool) (bool, error)
	// Menu shows numbered choices and reads a number, as the reference
	// tools do for service control.
	Menu(message string, options []string) (int, error)
}

// NewPrompter returns a survey prompter on the given terminal streams.
func NewPrompter(io *IOStreams) Prompter {
	in, _ := io.In.(*os.File)
	out, _ := io.ErrOut.(*os.File)
	return &surveyPrompter{stdio: survey.WithStdio(in, out, out), streams: io}
}

type surveyPrompter struct {
	stdio   survey.AskOpt
	streams *IOStreams
}

// cancelled maps Ctrl-C to a cancellation, not a crash.
func cancelled(err error) error {
	if errors.Is(err, terminal.InterruptErr) {
		return errkind.New(errkind.Cancelled, "cancelled")
	}
	return err
}

func (p *surveyPrompter) Input(message, def string) (string, error) {
	var ans string
	err := survey.AskOne(&survey.Input{Message: message, Default: def}, &ans, p.stdio)
	return strings.TrimSpace(ans), cancelled(err)
}

func (p *surveyPrompter) Password(message string) (string, error) {
	var ans string
	err := survey.AskOne(&survey.Password{Message: message}, &ans, p.stdio)
	return ans, cancelled(err)
}

func (p *surveyPrompter) Select(message string, options []string, def string) (string, error) {
	var ans string
	q := &survey.Select{Message: message, Options: options}
	if def != "" {
		q.Default = def
	}
	err := survey.AskOne(q, &ans, p.stdio)
	return ans, cancelled(err)
}

func (p *surveyPrompter) Confirm(message string, def bool) (bool, error) {
	var ans bool
	err := survey.AskOne(&survey.Confirm{Message: message, Default: def}, &ans, p.stdio)
	return ans, cancelled(err)
}

func (p *surveyPrompter) Menu(message string, options []string) (int, error) {
	fmt.Fprintln(p.streams.ErrOut, message)
	for i, o := range options {
		fmt.Fprintf(p.streams.ErrOut, "  %d. %s\n", i+1, o)
	}
	var ans string
	err := survey.AskOne(&survey.Input{Message: fmt.Sprintf("Enter a number [1-%d]:", len(options))}, &ans, p.stdio,
		survey.WithValidator(func(v any) error {
			n, err := strconv.Atoi(strings.TrimSpace(v.(string)))
			if err != nil || n < 1 || n > len(options) {
				return fmt.Errorf("enter a number from 1 to %d", len(options))
			}
			return nil
		}))
	if err != nil {
		return 0, cancelled(err)
	}
	n, _ := strconv.Atoi(strings.TrimSpace(ans))
	return n - 1, nil
}

// RequiredError is the error for a value that cannot be asked for; what
// names the flag or variable to set.
func RequiredError(what string) error {
	return errkind.New(errkind.Usage, "%s is required when not running interactively", what)
}

// RequiredErrorHint is RequiredError with a further way out.
func RequiredErrorHint(what, hint string) error {
	return errkind.New(errkind.Usage, "%s is required when not running interactively; %s", what, hint)
}
