package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/boombuler/barcode/qr"
	"github.com/pquerna/otp/totp"

	totpfactor "github.com/stepupgrpc/stepup/challenge/totp"
	"github.com/stepupgrpc/stepup/cmd/cli"
)

func runTOTP(ctx context.Context, e *env, args []string) error {
	sub := cli.Program[*env]{
		Name:        "stepup totp",
		Description: "TOTP (RFC 6238) enrolment and codes, as the step-up TOTP factor verifies them.\n",
		Commands: []cli.Command[*env]{
			{Name: "enroll", Summary: "create a secret and print it, its otpauth:// URI and a QR code for an authenticator app", Run: runTOTPEnroll},
			{Name: "code", Summary: "print the current code of a secret", Run: runTOTPCode},
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

func runTOTPEnroll(_ context.Context, e *env, args []string) error {
	fs := cli.NewFlagSet(e.stderr, "stepup totp enroll", "--subject NAME [--issuer NAME] [--no-qr]",
		"Creates a random TOTP secret (160 bits, SHA-1, 6 digits, 30 s: what\n"+
			"authenticator apps expect) and prints it, its otpauth:// URI and the URI as\n"+
			"a QR code to scan. The secret goes in the server's TOTP secrets file under\n"+
			"the subject; keep it like a password.\n")
	subject := fs.String("subject", "", "the token `subject` it is for (required)")
	issuer := fs.String("issuer", "Stepup", "the `name` the app shows")
	noQR := fs.Bool("no-qr", false, "do not draw the QR code")
	if err := cli.Parse(fs, args, "subject"); err != nil {
		return err
	}
	key, err := totp.Generate(totp.GenerateOpts{Issuer: *issuer, AccountName: *subject})
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "secret: %s\nuri:    %s\n", key.Secret(), key.URL())
	if !*noQR {
		return drawQR(e.stdout, key.URL())
	}
	return nil
}

func runTOTPCode(_ context.Context, e *env, args []string) error {
	fs := cli.NewFlagSet(e.stderr, "stepup totp code", "--secret BASE32 | --secret-file FILE",
		"Prints the current TOTP code of a secret and how long it stays valid.\n")
	secret := fs.String("secret", "", "the base32 `secret`")
	file := fs.String("secret-file", "", "a `file` holding the secret")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if (*secret == "") == (*file == "") {
		return fmt.Errorf("%w: one of --secret and --secret-file", cli.ErrUsage)
	}
	s := *secret
	if *file != "" {
		v, err := readValue(e, *file)
		if err != nil {
			return err
		}
		s = v
	}
	now := e.now()
	code, err := totpfactor.Code(strings.ToUpper(strings.TrimSpace(s)), now)
	if err != nil {
		return err
	}
	left := 30 - now.Unix()%30
	fmt.Fprintf(e.stdout, "%s\n", code)
	fmt.Fprintf(e.stderr, "valid for %d s more\n", left)
	return nil
}

// drawQR prints text as a QR code with half-block characters (two modules
// per character cell, vertically), with the quiet zone scanners need.
func drawQR(w io.Writer, text string) error {
	code, err := qr.Encode(text, qr.M, qr.Auto)
	if err != nil {
		return err
	}
	n := code.Bounds().Dx()
	const quiet = 2
	dark := func(x, y int) bool {
		x, y = x-quiet, y-quiet
		if x < 0 || y < 0 || x >= n || y >= n {
			return false
		}
		r, _, _, _ := code.At(x, y).RGBA()
		return r < 0x8000
	}
	var b strings.Builder
	for y := 0; y < n+2*quiet; y += 2 {
		for x := 0; x < n+2*quiet; x++ {
			// Light modules are drawn, dark left blank: the code reads on a
			// dark terminal, the usual case.
			top, bottom := !dark(x, y), !dark(x, y+1)
			switch {
			case top && bottom:
				b.WriteRune('█')
			case top:
				b.WriteRune('▀')
			case bottom:
				b.WriteRune('▄')
			default:
				b.WriteRune(' ')
			}
		}
		b.WriteByte('\n')
	}
	_, err = io.WriteString(w, b.String())
	return err
}
