package zman

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"sync"

	"github.com/spf13/cobra"

	"zonekit/internal/api"
	"zonekit/internal/atomicfile"
	"zonekit/internal/backup"
	"zonekit/internal/cli/cmdutil"
	"zonekit/internal/client"
	"zonekit/internal/errkind"
	"zonekit/internal/serverfiles"
	"zonekit/internal/ui"
)

type backupOptions struct {
	f      *Factory
	File   string
	Verify bool
	Force  bool
	pass   passphraseSource
}

func newBackup(f *Factory, runF func(*backupOptions) error) *cobra.Command {
	o := &backupOptions{f: f}
	cmd := &cobra.Command{
		Use:     "zenserver-backup FILE",
		Aliases: []string{"zsb"},
		Short:   "Back up a zone server's configuration and store into an encrypted file",
		Long: `Back up the zone server (this one, or --host) into FILE, encrypted with a
passphrase of at least 10 characters. The backup holds the server's conf/
tree (configuration, certificates and keys; on the server with the
CertAuth role also the zone CA key pair) and a consistent snapshot of the
zone store taken while the server runs. Logs, the content repository and
run-time files are left out.

The passphrase is asked twice on a terminal; scripts give it with
--passphrase-file, --passphrase-fd, --passphrase-command or
--passphrase-env, never as an argument. FILE appears only when the backup
is complete. From cron, zsb prints nothing but errors.

With --verify, FILE is checked (passphrase, every chunk, every file's
SHA-256) and nothing is written; no zone server is needed.`,
		Example: `  zman zsb /backup/zone1.zbk --passphrase-file /root/.zonekit-backup-pass
  zman zsb --verify /backup/zone1.zbk --passphrase-env BACKUP_PASS`,
		Args: cmdutil.ExactArgs(1, "the backup FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.File = args[0]
			if runF != nil {
				return runF(o)
			}
			if o.Verify {
				return verifyRun(cmd.Context(), o)
			}
			return backupRun(cmd.Context(), o)
		},
	}
	cmd.Flags().BoolVar(&o.Verify, "verify", false, "check FILE without writing anything")
	cmd.Flags().BoolVarP(&o.Force, "force", "f", false, "replace FILE if it exists (never replaced otherwise)")
	o.pass.addFlags(cmd.Flags())
	return cmd
}

// downloadAheadMiB bounds the backup stream held in memory ahead of the
// encryption: about what a zone server sends while the key is derived.
const downloadAheadMiB = 16

func backupRun(ctx context.Context, o *backupOptions) error {
	streams := o.f.IO
	if err := refuseOverwrite(o.File, o.Force); err != nil {
		return err
	}
	pass, err := o.pass.read(ctx, streams, o.f.Prompter, "Backup passphrase", true)
	if err != nil {
		return err
	}
	if err := backup.CheckPassphrase(pass); err != nil {
		return err
	}
	// The key is derived (Argon2id, about half a second of both cores)
	// while the request goes out and the server starts on the backup;
	// it runs apart, so that Ctrl-C ends the command at once.
	type sealed struct {
		s   *backup.Sealer
		err error
	}
	keyed := make(chan sealed, 1)
	go func() {
		s, err := backup.NewSealer(pass, backup.DefaultKDF())
		keyed <- sealed{s, err}
	}()
	c, err := o.f.Client()
	if err != nil {
		return err
	}
	defer c.Close()
	resp, err := c.Stream(ctx, http.MethodGet, api.Prefix+"/backup", nil, "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	// The answer is read into memory while the key is still being
	// derived (and later while this side encrypts and writes), so the
	// server does not stop and wait: it reads its configuration files
	// from disk meanwhile.
	body := backup.ReadAhead(resp.Body, downloadAheadMiB)
	defer body.Close()

	out, err := atomicfile.New(o.File, 0o600)
	if err != nil {
		return err
	}
	defer out.Abort()
	var k sealed
	select {
	case k = <-keyed:
	case <-ctx.Done():
		return errkind.New(errkind.Cancelled, "interrupted while deriving the backup key: nothing was written")
	}
	if k.err != nil {
		return fmt.Errorf("backup to %s: %w", o.File, k.err)
	}
	enc, err := k.s.Encrypt(out)
	if err != nil {
		return fmt.Errorf("backup to %s: %w", o.File, err)
	}
	prog := ui.NewProgress(streams, -1, "backing up")
	_, err = io.Copy(enc, prog.Reader(body))
	prog.Done()
	if err != nil {
		return fmt.Errorf("backup to %s: %w", o.File, err)
	}
	if err := enc.Close(); err != nil {
		return fmt.Errorf("backup to %s: %w", o.File, err)
	}
	if err := commitOnce(out, o.File, o.Force); err != nil {
		return err
	}
	fi, _ := os.Stat(o.File)
	server, zone := resp.Header.Get(api.HeaderServer), resp.Header.Get(api.HeaderZone)
	if format, _ := o.f.Format(); format == ui.FormatJSON {
		return ui.JSON(streams.Out, map[string]any{"file": o.File, "server": server, "zone": zone, "bytes": fi.Size()})
	}
	if streams.OutTTY || o.f.Global.Verbose {
		fmt.Fprintf(streams.Out, "Backed up server %s of zone %s to %s (%d bytes).\n", server, zone, o.File, fi.Size())
	}
	return nil
}

// archive is a backup file opened for reading, its header checked and its
// key not yet derived.
type archive struct {
	file    *os.File
	pass    []byte
	header  *backup.Header
	payload int64 // length of the decrypted stream
	prog    *ui.Progress
	once    sync.Once
}

// openArchive reads the passphrase (a prompt comes first, before anything
// else starts) and opens FILE, checking its header; the key is derived by
// decrypt.
func openArchive(ctx context.Context, f *Factory, path string, src *passphraseSource, label string) (*archive, error) {
	pass, err := src.read(ctx, f.IO, f.Prompter, "Backup passphrase", false)
	if err != nil {
		return nil, err
	}
	// A FIFO or a device would block the open or the reads beyond the
	// reach of Ctrl-C: a backup is a regular file.
	if fi, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("open backup: %w", err)
	} else if !fi.Mode().IsRegular() {
		return nil, errkind.New(errkind.Invalid, "backup %s is not a regular file", path)
	}
	file, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open backup: %w", err)
	}
	fi, err := file.Stat()
	if err != nil {
		file.Close()
		return nil, err
	}
	h, err := backup.ReadHeader(file)
	if err == nil {
		_, err = file.Seek(0, io.SeekStart)
	}
	var payload int64
	if err == nil {
		payload, err = backup.PayloadSize(h, fi.Size())
	}
	if err != nil {
		file.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	// The disk reads the file while the key is derived.
	backup.PrefetchArchive(file)
	return &archive{file: file, pass: pass, header: h, payload: payload, prog: ui.NewProgress(f.IO, fi.Size(), label)}, nil
}

// decrypt derives the key (Argon2id, costs from the file's header) and
// returns the reader of the decrypted stream; a wrong passphrase fails
// here.
func (a *archive) decrypt() (io.Reader, error) {
	return backup.Decrypt(a.prog.Reader(a.file), a.pass)
}

func (a *archive) close() {
	a.once.Do(func() { a.prog.Done(); a.file.Close() })
}

// openBackup opens and starts decrypting FILE; a wrong passphrase fails here.
func openBackup(ctx context.Context, f *Factory, path string, src *passphraseSource, label string) (io.Reader, *ui.Progress, func(), error) {
	a, err := openArchive(ctx, f, path, src, label)
	if err != nil {
		return nil, nil, nil, err
	}
	// The key derivation runs apart, so that Ctrl-C ends the command at
	// once.
	type opened struct {
		r   io.Reader
		err error
	}
	done := make(chan opened, 1)
	go func() {
		r, err := a.decrypt()
		done <- opened{r, err}
	}()
	var dec io.Reader
	select {
	case o := <-done:
		dec, err = o.r, o.err
	case <-ctx.Done():
		err = errkind.New(errkind.Cancelled, "interrupted while deriving the backup key: nothing was read or restored")
	}
	if err != nil {
		a.close()
		return nil, nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return dec, a.prog, a.close, nil
}

func verifyRun(ctx context.Context, o *backupOptions) error {
	dec, _, done, err := openBackup(ctx, o.f, o.File, &o.pass, "verifying")
	if err != nil {
		return err
	}
	defer done()
	m, files, err := backup.VerifyKeep(dec, nil, serverfiles.ConfFiles())
	if err != nil {
		return fmt.Errorf("%s: %w", o.File, err)
	}
	done()
	// The checks a restore makes before it swaps anything in, but those
	// of the store's content, which only the staged copy allows.
	if _, err := serverfiles.CheckConf(files); err != nil {
		return errkind.Wrap(errkind.Invalid, fmt.Errorf("%s is intact but cannot be restored: %w", o.File, err))
	}
	if !slices.ContainsFunc(m.Entries, func(e backup.Entry) bool { return e.Path == serverfiles.StoreEntry }) {
		return errkind.New(errkind.Invalid, "%s is intact but cannot be restored: it holds no zone store (%s)", o.File, serverfiles.StoreEntry)
	}
	return o.f.done(map[string]any{"file": o.File, "intact": true, "server": m.Info.Server, "zone": m.Info.Zone,
		"zonekit_version": m.Info.ZonekitVersion, "created": m.Info.Created, "entries": len(m.Entries)},
		"%s is intact: server %s of zone %s, zonekit %s, taken %s, %d entries.\n",
		o.File, m.Info.Server, m.Info.Zone, m.Info.ZonekitVersion, ui.Date(m.Info.Created), len(m.Entries))
}

type restoreOptions struct {
	f      *Factory
	File   string
	DryRun bool
	pass   passphraseSource
}

func newRestore(f *Factory, runF func(*restoreOptions) error) *cobra.Command {
	o := &restoreOptions{f: f}
	cmd := &cobra.Command{
		Use:     "zenserver-restore FILE",
		Aliases: []string{"zsr"},
		Short:   "Restore a zone server from an encrypted backup",
		Long: `Restore the zone server (this one, or --host) from FILE. The archive is
decrypted here and sent to the server, which unpacks and verifies all of it
in a staging area before it touches anything; then it swaps the
configuration and the zone store in, keeping the previous state until the
swap has succeeded. The server then refuses further requests until it is
restarted (zconfigure -c Start --action restart).

A backup from another major version of zonekit is refused. With --dry-run
the server lists what would change and changes nothing.`,
		Args: cmdutil.ExactArgs(1, "the backup FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.File = args[0]
			if runF != nil {
				return runF(o)
			}
			return restoreRun(cmd.Context(), o)
		},
	}
	cmd.Flags().BoolVar(&o.DryRun, "dry-run", false, "list what would change, change nothing")
	o.pass.addFlags(cmd.Flags())
	return cmd
}

var errUploadEnded = errors.New("upload ended")

func restoreRun(ctx context.Context, o *restoreOptions) error {
	c, err := o.f.Client()
	if err != nil {
		return err
	}
	defer c.Close()
	a, err := openArchive(ctx, o.f, o.File, &o.pass, "restoring")
	if err != nil {
		return err
	}
	defer a.close()
	// The upload starts before the key is derived: the server gets ready
	// (it reads the live configuration for its change report) while
	// Argon2id runs here, instead of after it. Then the archive is
	// decrypted into the upload. A wrong passphrase or a damaged archive
	// breaks the upload, so the server discards its staging area and
	// nothing is restored.
	pr, pw := io.Pipe()
	keyed := make(chan struct{})
	copyErr := make(chan error, 1)
	go func() {
		dec, err := a.decrypt()
		close(keyed)
		if err == nil {
			_, err = io.Copy(pw, dec)
		}
		pw.CloseWithError(err)
		copyErr <- err
	}()
	path := api.Prefix + "/restore"
	if o.DryRun {
		path += "?dry_run=1"
	}
	resp, err := c.StreamLength(ctx, http.MethodPost, path, pr, a.payload, "application/zstd")
	// A copy still under way ends with errUploadEnded: the server's answer
	// (or the lack of one) tells what happened.
	pr.CloseWithError(errUploadEnded)
	var cerr error
	select {
	case cerr = <-copyErr:
	case <-ctx.Done():
		// The key derivation may still run: it is not waited for.
		select {
		case <-keyed:
			cerr = <-copyErr
		default:
			return errkind.New(errkind.Cancelled, "interrupted while deriving the backup key: nothing was restored")
		}
	}
	sent := cerr == nil
	if ctx.Err() != nil {
		if sent && !o.DryRun {
			return errkind.New(errkind.Cancelled, "interrupted after the whole backup was sent: the zone server goes on with the restore; its log says when it is done (then restart it: zconfigure -c Start --action restart)")
		}
		return errkind.New(errkind.Cancelled, "interrupted before the whole backup was sent: nothing was restored")
	}
	// A closed pipe: the transport stopped reading, the server answered.
	if cerr != nil && !errors.Is(cerr, errUploadEnded) && !errors.Is(cerr, io.ErrClosedPipe) {
		return fmt.Errorf("%s: %w (nothing was restored)", o.File, cerr)
	}
	if err != nil && sent && !o.DryRun && client.NoAnswer(err) {
		// The server had it all and never answered: it may have died in
		// the middle of the swap. Its next start decides.
		return errkind.Wrap(errkind.Unavailable, fmt.Errorf("the zone server stopped answering after it received the whole backup (%v): it may have died during the restore. "+
			"Start it (zconfigure -c Start --action start): its start finishes the restore or puts the previous state back, and its log says which", err))
	}
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	a.close()
	var res api.RestoreResult
	if err := decodeJSON(resp.Body, &res); err != nil {
		return err
	}
	format, err := o.f.Format()
	if err != nil {
		return err
	}
	if format == ui.FormatJSON {
		return ui.JSON(o.f.IO.Out, res)
	}
	out := o.f.IO.Out
	verb := "Restored"
	if res.DryRun {
		verb = "Would restore"
	}
	fmt.Fprintf(out, "%s server %s of zone %s from the backup of %s (zonekit %s, %d entries).\n",
		verb, res.Server, res.Zone, ui.Date(res.Created), res.ZonekitVersion, res.Files)
	rows := make([][]string, 0, len(res.Changes))
	for _, ch := range res.Changes {
		rows = append(rows, []string{ch.Action, ch.Path})
	}
	if len(rows) > 0 {
		if err := ui.Table(out, []string{"CHANGE", "PATH"}, rows); err != nil {
			return err
		}
	}
	if res.Restart != "" {
		fmt.Fprintf(out, "Restart the zone server now: %s\n", res.Restart)
	}
	return nil
}
