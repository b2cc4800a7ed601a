package zman

import (
	"context"
	"fmt"
	"math"
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
		values := resp.Header.Values(api.HeaderCertExpiry)
		if len(values) == 0 || f.expiryNoted {
			return
		}
		f.expiryNoted = true
		marker := filepath.Join(filepath.Dir(credstore.New(f.CredentialDir).Path()), "expiry-notice-"+safeName(f.admin))
		if fi, err := os.Stat(marker); err == nil && time.Since(fi.ModTime()) < 24*time.Hour {
			return
		}
		// One line for each certificate: the one that expires first is not
		// the only one to remint.
		for _, v := range values {
			when, what, ok := strings.Cut(v, " ")
			t, err := time.Parse(time.RFC3339, when)
			if !ok || err != nil {
				continue
			}
			days := int(time.Until(t).Hours() / 24)
			if time.Now().After(t) {
				fmt.Fprintf(f.IO.ErrOut, "zman: warning: the %s expired on %s: see 'zman certificate-expiry-check'\n", what, ui.LocalDate(t))
			} else {
				fmt.Fprintf(f.IO.ErrOut, "zman: warning: the %s expires on %s (in %d days): remint it before then (see 'zman certificate-expiry-check')\n", what, ui.LocalDate(t), days)
			}
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
	f        *Factory
	Within   int // days: WARNING
	Critical int // days: CRITICAL (0: only once expired)
	now      func() time.Time
}

// Monitoring-plugin exit statuses (Nagios, Icinga, Zabbix and Prometheus'
// script exporters read them).
const (
	monOK       = 0
	monWarning  = 1
	monCritical = 2
	monUnknown  = 3
)

// expiringCert is one line of certificate-expiry-check.
type expiringCert struct {
	What     string    `json:"what"`
	Subject  string    `json:"subject"`
	NotAfter time.Time `json:"not_after,omitzero"`
	Days     int       `json:"days_left"`
	Status   string    `json:"status"` // ok, expiring, critical, expired, stalled
	Detail   string    `json:"detail,omitempty"`
}

func newExpiryCheck(f *Factory, runF func(*expiryCheckOptions) error) *cobra.Command {
	o := &expiryCheckOptions{f: f, now: time.Now}
	cmd := &cobra.Command{
		Use:     "certificate-expiry-check [--within DAYS] [--critical DAYS]",
		Aliases: []string{"cec"},
		Short:   "Check the zone CA and server certificates for expiry (a monitoring plugin)",
		Long: `Check the zone CA, every server certificate and any certificate change
under way, as a monitoring plugin (Nagios, Icinga, Zabbix) would. Each is
listed with its expiry date, days left and status: ok, expiring (within
--within days, 90 by default), critical (within --critical days), expired,
or stalled (a change past its activation that still waits for
certificates). -o json gives the same list, days_left for each.

EXIT STATUS
  0    OK: nothing expires within --within days
  1    WARNING: a certificate expires within --within days
  2    CRITICAL: a certificate has expired or expires within --critical
       days, or a certificate change is stalled past its activation
  3    UNKNOWN: the check could not be made (no server answered, failed
       login, bad flags)`,
		Example: `  zman certificate-expiry-check || mail -s "zone certificates" ops@example.com
  zman cec --within 30 --critical 7 -o json`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.Within < 1 || o.Critical < 0 || o.Critical > o.Within {
				return errkind.WithStatus(monUnknown, errkind.New(errkind.Usage, "--within must be at least 1 day, and --critical between 0 and --within"))
			}
			if runF != nil {
				return runF(o)
			}
			err := o.f.withClient(cmd.Context(), o.run)
			if err != nil && !errkind.HasStatus(err) {
				// Whatever kept the check from being made is UNKNOWN.
				return errkind.WithStatus(monUnknown, err)
			}
			return err
		},
	}
	cmd.Flags().IntVar(&o.Within, "within", 90, "WARNING for certificates that expire within this many days")
	cmd.Flags().IntVar(&o.Critical, "critical", 0, "CRITICAL for certificates that expire within this many days (0: once expired)")
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return errkind.WithStatus(monUnknown, errkind.Wrap(errkind.Usage, err))
	})
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
	var change *api.CertificateChange
	var ch api.CertificateChange
	if err := c.Get(ctx, api.Prefix+"/certificate-changes/current", &ch); err == nil {
		change = &ch
	} else if !errkind.Is(err, errkind.NotFound) {
		return err
	}
	list := expiryList(o.now(), o.Within, o.Critical, ca, servers, change)
	err := o.f.print(list, []string{"CERTIFICATE", "SUBJECT", "EXPIRES", "DAYS LEFT", "STATUS"}, func() [][]string {
		rows := make([][]string, 0, len(list))
		for _, e := range list {
			expires, days := "-", "-"
			if !e.NotAfter.IsZero() {
				expires, days = ui.LocalDate(e.NotAfter), fmt.Sprint(e.Days)
			}
			status := e.Status
			if e.Detail != "" {
				status += ": " + e.Detail
			}
			rows = append(rows, []string{e.What, e.Subject, expires, days, status})
		}
		return rows
	})
	if err != nil {
		return err
	}
	return expiryStatus(list, o.Within)
}

// expiryList grades the zone's certificates at now, and a change under way
// the server calls stalled (due, but a server has no certificate yet).
func expiryList(now time.Time, within, critical int, ca api.CertificateAuthority, servers []api.ServerCertificate, change *api.CertificateChange) []expiringCert {
	var list []expiringCert
	add := func(what, subject string, notAfter time.Time) {
		left := notAfter.Sub(now)
		e := expiringCert{What: what, Subject: subject, NotAfter: notAfter, Days: int(math.Floor(left.Hours() / 24)), Status: "ok"}
		switch {
		case left <= 0:
			e.Status = "expired"
		case left < time.Duration(critical)*24*time.Hour:
			e.Status = "critical"
		case left < time.Duration(within)*24*time.Hour:
			e.Status = "expiring"
		}
		list = append(list, e)
	}
	add("zone CA", ca.Subject, ca.NotAfter)
	for _, s := range servers {
		add("server "+s.Server, s.Subject, s.NotAfter)
	}
	if change != nil && change.Stalled {
		var waiting []string
		for _, s := range change.Servers {
			if s.Cert == nil {
				waiting = append(waiting, s.Server)
			}
		}
		detail := fmt.Sprintf("past its activation (%s)", ui.LocalDate(change.Activation))
		if len(waiting) > 0 {
			detail += ", waiting for the certificate of " + strings.Join(waiting, ", ")
		}
		list = append(list, expiringCert{What: "certificate change", Subject: change.Name, Status: "stalled", Detail: detail})
	}
	return list
}

// expiryStatus is the check's result: nil for OK, else an error that
// names every certificate of the worst kind and carries its status.
func expiryStatus(list []expiringCert, within int) error {
	var warn, crit []string
	for _, e := range list {
		switch e.Status {
		case "expiring":
			warn = append(warn, fmt.Sprintf("%s in %d days", e.What, e.Days))
		case "critical":
			crit = append(crit, fmt.Sprintf("%s in %d days", e.What, e.Days))
		case "expired":
			crit = append(crit, e.What+" expired")
		case "stalled":
			crit = append(crit, e.What+" "+e.Subject+" stalled")
		}
	}
	switch {
	case len(crit) > 0:
		all := append(crit, warn...)
		return errkind.WithStatus(monCritical, fmt.Errorf("CRITICAL: %s", strings.Join(all, "; ")))
	case len(warn) > 0:
		return errkind.WithStatus(monWarning, fmt.Errorf("WARNING: %s (within %d days)", strings.Join(warn, "; "), within))
	}
	return nil
}
