package zman

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"zonekit/internal/api"
	"zonekit/internal/cli/cmdutil"
	"zonekit/internal/client"
	"zonekit/internal/errkind"
	"zonekit/internal/ui"
)

func newChangeCheck(f *Factory) *cobra.Command {
	return &cobra.Command{
		Use:     "certificate-change-check",
		Aliases: []string{"cchk"},
		Short:   "Preflight the certificate change under way: would every server work at activation?",
		Long: `Check, for every server, the certificate it will serve once the change under
way activates (or, with no change, the one it serves now) as a client will
see it then: that it chains to the CA clients will trust with only the
intermediates the server sends (chain completeness), serves TLS, is valid
at the activation time, and covers every name and address by which
agents, zman and peer servers reach the server. A server still waiting
for its certificate is a problem too. Warnings (a certificate that
expires within 30 days of activation) do not fail the check.

Run it before the activation of a change to an external CA: a problem
found now is a lock-out avoided then.

EXIT STATUS
  0    every server would work
  1    a server would not (each problem is listed), or the check failed
  2    usage error`,
		Example: `  zman certificate-change-check
  zman cchk -o json`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.withClient(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				var chk api.CertificateCheck
				if err := c.Get(ctx, api.Prefix+"/certificate-changes/check", &chk); err != nil {
					return err
				}
				return f.printCheck(chk)
			})
		},
	}
}

func (f *Factory) printCheck(chk api.CertificateCheck) error {
	format, err := f.Format()
	if err != nil {
		return err
	}
	if format != ui.FormatJSON {
		what := "Certificates in use, now"
		if chk.Change != "" {
			what = fmt.Sprintf("Change %q, at activation", chk.Change)
		}
		ui.KeyValues(f.IO.Out, [][2]string{{"Checked", what + " (" + ui.LocalDate(chk.At) + ")"}, {"Trusted CA", chk.CA}})
		fmt.Fprintln(f.IO.Out)
	}
	// A report (key-values, then a table) keeps its table when piped.
	err = printReport(f, format, chk, []string{"SERVER", "EXPIRES", "RESULT"}, func() [][]string {
		rows := make([][]string, 0, len(chk.Servers))
		for _, s := range chk.Servers {
			result := "ok"
			if len(s.Problems) > 0 {
				result = strings.Join(s.Problems, "; ")
			}
			for _, w := range s.Warnings {
				result += " (warning: " + w + ")"
			}
			expires := "-"
			if !s.NotAfter.IsZero() {
				expires = ui.LocalDate(s.NotAfter)
			}
			rows = append(rows, []string{s.Server, expires, result})
		}
		return rows
	})
	if err != nil {
		return err
	}
	var bad []string
	for _, s := range chk.Servers {
		if len(s.Problems) > 0 {
			bad = append(bad, s.Server)
		}
	}
	if len(bad) > 0 {
		return errkind.New(errkind.Failure, "%d of %d servers would not work: %s", len(bad), len(chk.Servers), strings.Join(bad, ", "))
	}
	return nil
}
