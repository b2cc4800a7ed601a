package zman

import (
	"context"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"zonekit/internal/api"
	"zonekit/internal/cli/cmdutil"
	"zonekit/internal/client"
	"zonekit/internal/errkind"
	"zonekit/internal/spk"
	"zonekit/internal/ui"
)

func newSPKCompile(f *Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "spk-compile SOURCE.spk OUT.cpk",
		Aliases: []string{"spkc"},
		Short:   "Compile a server software package, signed by the zone CA",
		Long: `Check an SPK source, gather the files its steps take from the package and
write a sealed CPK whose manifest the zone CA signs (only the manifest's
SHA-256 travels to the zone server). Agents of the zone accept it with
'zac spk-process --require-signature'. See docs/spk.md for the format.`,
		Args: cmdutil.ExactArgs(2, "the SPK source and the CPK to write"),
		RunE: func(cmd *cobra.Command, args []string) error {
			out := args[1]
			return f.withClient(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				sign := func(digest []byte) (spk.Signature, error) {
					var sig api.CPKSignature
					if err := c.Post(ctx, api.Prefix+"/cpk-signatures", api.CPKSignRequest{SHA256: hex.EncodeToString(digest)}, &sig); err != nil {
						return spk.Signature{}, fmt.Errorf("zone signature: %w", err)
					}
					return spk.Signature{Algorithm: sig.Algorithm, Value: sig.Value, CAPEM: sig.CAPEM}, nil
				}
				res, err := spk.CompileFile(args[0], out, sign, time.Now())
				if err != nil {
					return errkind.Wrap(errkind.Invalid, err)
				}
				format, err := f.Format()
				if err != nil {
					return err
				}
				if format == ui.FormatJSON {
					return ui.JSON(f.IO.Out, res)
				}
				fmt.Fprintf(f.IO.Out, "Compiled %s: %d file(s), %d bytes of content, signed by %s.\nSHA-256 %s\n", out, res.Files, res.Bytes, res.Signer, res.Digest)
				return nil
			})
		},
	}
	return cmd
}
