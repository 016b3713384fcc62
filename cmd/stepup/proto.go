package main

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/stepupgrpc/stepup/cmd/cli"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
)

func runProto(ctx context.Context, e *env, args []string) error {
	sub := cli.Program[*env]{
		Name:        "stepup proto",
		Description: "The stepup.v1 .proto files, for a build without a schema registry.\n",
		Commands: []cli.Command[*env]{
			{Name: "export", Summary: "write stepup/v1/options.proto (and gateway.proto) under a directory, to vendor them", Run: runProtoExport},
		},
	}
	if code := sub.Run(ctx, e, args, e.stdout, e.stderr); code != cli.ExitOK {
		if code == cli.ExitUsage {
			return cli.ErrUsage
		}
		return cli.ErrReported
	}
	return nil
}

func runProtoExport(_ context.Context, e *env, args []string) error {
	f := cli.NewFlagSet(e.stderr, "stepup proto export", "--dir DIR [--force]",
		"Writes DIR/stepup/v1/options.proto and DIR/stepup/v1/gateway.proto, the files\n"+
			"this version of Stepup was built from, so that your .proto files can\n"+
			"import \"stepup/v1/options.proto\". Make DIR an import path of your build\n"+
			"but never generate code for it: its Go code is\n"+
			"github.com/stepupgrpc/stepup/proto/stepup/v1, and a second copy panics at\n"+
			"init with a registration conflict (docs/PROTO.md). An existing file is\n"+
			"replaced only when it is the same, or with --force.\n")
	dir := f.String("dir", "", "the `directory` to write under (required)")
	force := f.Bool("force", false, "replace files that differ (an upgrade)")
	if err := cli.Parse(f, args, "dir"); err != nil {
		return err
	}
	return fs.WalkDir(stepupv1.Protos, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := stepupv1.Protos.ReadFile(name)
		if err != nil {
			return err
		}
		out := filepath.Join(*dir, "stepup", "v1", name)
		if old, err := os.ReadFile(out); err == nil && !bytes.Equal(old, data) && !*force {
			return fmt.Errorf("%s exists and differs (another version?): --force replaces it", out)
		}
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(out, data, 0o644); err != nil {
			return err
		}
		fmt.Fprintln(e.stdout, out)
		return nil
	})
}
