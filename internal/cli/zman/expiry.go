package zman

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"zonekit/internal/api"
	"zonekit/internal/atomicfile"
	"zonekit/internal/cli/cmdutil"
	"zonekit/internal/client"
	"zonekit/internal/credstore"
	"zonekit/internal/errkind"
	"zonekit/internal/ui"
)

// watchExpiry returns the response observer that warns, on stderr and at
// most once a day per administrator, when the zone server says a zone
// certificate expires within 90 days. Scripts reading -o json on stdout
// never see it.
func (f *Factory) watchExpiry() func(*http.Response) {
	return func(resp *http.Response) {
		// A server cut off from the zone's replication leader answers from
		// its own copy: say so, once per command, on stderr.
		if v := resp.Header.Get(api.HeaderStale); v != "" && !f.staleNoted {
			f.staleNoted = true
			fmt.Fprintf(f.IO.ErrOut, "zman: warning: %s has had no word from the zone's other servers since %s: what it shows may be out of date, and changes wait for them\n", resp.Request.URL.Host, v)
		}
		v := resp.Header.Get(api.HeaderCertExpiry)
		if v == "" || f.expiryNoted {
			return
		}
		f.expiryNoted = true
		when, what, ok := strings.Cut(v, " ")
		t, err := time.Parse(time.RFC3339, when)
		if !ok || err != nil {
			return
		}
		marker := filepath.Join(filepath.Dir(credstore.New(f.CredentialDir).Path()), "expiry-notice-"+safeName(f.admin))
		if fi, err := os.Stat(marker); err == nil && time.Since(fi.ModTime()) < 24*time.Hour {
			return
		}
		days := int(time.Until(t).Hours() / 24)
		if time.Now().After(t) {
			fmt.Fprintf(f.IO.ErrOut, "zman: warning: the %s expired on %s: see 'zman certificate-expiry-check'\n", what, ui.LocalDate(t))
		} else {
			fmt.Fprintf(f.IO.ErrOut, "zman: warning: the %s expires on %s (in %d days): remint it before then (see 'zman certificate-expiry-check')\n", what, ui.LocalDate(t), days)
		}
		if err := os.MkdirAll(filepath.Dir(marker), 0o700); err == nil {
			atomicfile.WriteFile(marker, []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o600)
		}
	}
}

func safeName(s string) string {
	if s == "" {
		return "unknown"
	}
	return strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r < ' ' || r == '.' {
			return '_'
		}
		return r
	}, s)
}

type expiryCheckOptions struct {
	f      *Factory
	Within int // days
}

// expiringCert is one line of certificate-expiry-check.
type expiringCert struct {
	What     string    `json:"what"`
	Subject  string    `json:"subject"`
	NotAfter time.Time `json:"not_after"`
	Days     int       `json:"days_left"`
	Status   string    `json:"status"` // ok, expiring, expired
}

func newExpiryCheck(f *Factory, runF func(*expiryCheckOptions) error) *cobra.Command {
	o := &expiryCheckOptions{f: f}
	cmd := &cobra.Command{
		Use:     "certificate-expiry-check [--within DAYS]",
		Aliases: []string{"cec"},
		Short:   "Check the zone CA and server certificates for expiry (for monitoring)",
		Long: `Check the zone CA and every server certificate. Each is listed with its
expiry date and days left; the exit status is 0 when none expires within
--within days (90 by default) and 1 when one does or has expired, so that
monitoring scripts and cron jobs can alert on it.`,
		Example: `  zman certificate-expiry-check || mail -s "zone certificates" ops@example.com
  zman cec --within 30 -o json`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.Within < 1 {
				return errkind.New(errkind.Usage, "--within must be at least 1 day")
			}
			if runF != nil {
				return runF(o)
			}
			return o.f.withClient(cmd.Context(), o.run)
		},
	}
	cmd.Flags().IntVar(&o.Within, "within", 90, "warn about certificates that expire within this many days")
	return cmd
}

func (o *expiryCheckOptions) run(ctx context.Context, c *client.Client) error {
	var ca api.CertificateAuthority
	if err := c.Get(ctx, api.Prefix+"/certificate-authority", &ca); err != nil {
		return err
	}
	var servers []api.ServerCertificate
	if err := c.Get(ctx, api.Prefix+"/server-certificates", &servers); err != nil {
		return err
	}
	now := time.Now()
	window := time.Duration(o.Within) * 24 * time.Hour
	var list []expiringCert
	add := func(what, subject string, notAfter time.Time) {
		e := expiringCert{What: what, Subject: subject, NotAfter: notAfter, Days: int(notAfter.Sub(now).Hours() / 24), Status: "ok"}
		switch {
		case now.After(notAfter):
			e.Status = "expired"
		case notAfter.Sub(now) < window:
			e.Status = "expiring"
		}
		list = append(list, e)
	}
	add("zone CA", ca.Subject, ca.NotAfter)
	for _, s := range servers {
		add("server "+s.Server, s.Subject, s.NotAfter)
	}
	err := o.f.print(list, []string{"CERTIFICATE", "SUBJECT", "EXPIRES", "DAYS LEFT", "STATUS"}, func() [][]string {
		rows := make([][]string, 0, len(list))
		for _, e := range list {
			rows = append(rows, []string{e.What, e.Subject, ui.LocalDate(e.NotAfter), fmt.Sprint(e.Days), e.Status})
		}
		return rows
	})
	if err != nil {
		return err
	}
	bad := 0
	for _, e := range list {
		if e.Status != "ok" {
			bad++
		}
	}
	if bad > 0 {
		return errkind.New(errkind.Failure, "%d of %d zone certificates expire within %d days or have expired", bad, len(list), o.Within)
	}
	return nil
}
