package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/stepupgrpc/stepup/challenge"
	"github.com/stepupgrpc/stepup/cmd/cli"
	"github.com/stepupgrpc/stepup/dpop"
	"github.com/stepupgrpc/stepup/interceptor"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
)

// serverLeeway is the clock skew a Guard tolerates by default on a token's
// exp and nbf (interceptor.WithLeeway).
const serverLeeway = 30 * time.Second

type inspectFlags struct {
	token, key, method, authority, nonce string
	proof                                string
	jwks, iss, aud                       string
	plain                                bool
}

func runInspect(ctx context.Context, e *env, args []string) error {
	fs := cli.NewFlagSet(e.stderr, "stepup inspect", "[VALUE | -] [--token FILE] [--key FILE] [--method M --authority A] [--jwks FILE --iss URL --aud URL] [--proof FILE]",
		"Decodes a value and says what a Stepup server would think of it: an access\n"+
			"token, a DPoP proof, a step-up challenge, grant or answer, or a base64\n"+
			"grpc-status-details-bin trailer (a refusal, with its challenge). VALUE is\n"+
			"the argument, or stdin when it is - or absent. Each problem is said in\n"+
			"plain words with the reason code of the server's audit event; the exit\n"+
			"code is 1 when there is one. What needs more than the value (a token's\n"+
			"signature, a proof's htu) is checked when the flags give it.\n")
	var f inspectFlags
	fs.StringVar(&f.token, "token", "", "the access token `file` a proof goes with (its ath and cnf.jkt)")
	fs.StringVar(&f.proof, "proof", "", "with a refusal: the proof `file` (or value) the refused call sent; checks that the refusal's\nproof_sha256 names it, then checks the proof (with --token, --method, --authority) to name what failed")
	fs.StringVar(&f.key, "key", "", "the client's key `file`: cnf.jkt and the proof key must be its thumbprint")
	fs.StringVar(&f.method, "method", "", "the full `method` the proof is for, /pkg.Service/Method")
	fs.StringVar(&f.authority, "authority", "", "the `authority` the client dialled, host[:port]")
	fs.StringVar(&f.nonce, "nonce", "", "the server's current DPoP `nonce`")
	fs.BoolVar(&f.plain, "http", false, "the server is plaintext (htu may be http)")
	fs.StringVar(&f.jwks, "jwks", "", "the issuer's JWKS `file`: verify the token's signature (with --iss and --aud)")
	fs.StringVar(&f.iss, "iss", "", "the `issuer` the server expects")
	fs.StringVar(&f.aud, "aud", "", "the `audience` the server expects")
	at := fs.String("at", "", "judge times as of this `time` (RFC 3339 or Unix seconds) instead of now, as for a value from a log")
	value, args := valueArg(args)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return cli.ErrHelp
		}
		return cli.ErrUsage
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", cli.ErrUsage, fs.Arg(0))
	}
	if *at != "" {
		t, err := parseTime(*at)
		if err != nil {
			return fmt.Errorf("%w: --at: %v", cli.ErrUsage, err)
		}
		e = &env{stdin: e.stdin, stdout: e.stdout, stderr: e.stderr, now: func() time.Time { return t }}
	}
	value, err := valueOrStdin(e, value)
	if err != nil {
		return err
	}
	if value == "" {
		return fmt.Errorf("%w: no value to inspect", cli.ErrUsage)
	}
	in := &inspector{e: e, f: f}
	if err := in.inspect(ctx, value); err != nil {
		return err
	}
	if in.problems > 0 {
		fmt.Fprintf(e.stdout, "\n%d problem(s): a server would refuse this.\n", in.problems)
		return cli.ErrReported
	}
	fmt.Fprintln(e.stdout, "\nno problem found.")
	return nil
}

// valueArg splits off the value a command takes before its flags (inspect
// and answer): the first argument, unless it is a flag; "-" is stdin.
func valueArg(args []string) (string, []string) {
	if len(args) > 0 && (!strings.HasPrefix(args[0], "-") || args[0] == "-") {
		return args[0], args[1:]
	}
	return "", args
}

// valueOrStdin returns v trimmed, or stdin's content when v is "" or "-".
func valueOrStdin(e *env, v string) (string, error) {
	if v == "" || v == "-" {
		data, err := readAll(e.stdin)
		if err != nil {
			return "", err
		}
		v = string(data)
	}
	return strings.TrimSpace(v), nil
}

// parseTime reads RFC 3339 or Unix seconds.
func parseTime(s string) (time.Time, error) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(n, 0), nil
	}
	return time.Parse(time.RFC3339, s)
}

// inspector prints what it finds and counts the problems.
type inspector struct {
	e        *env
	f        inspectFlags
	problems int
	indent   string
}

// line prints one line. Everything inspect prints goes through here, and
// most of it comes from the value inspected (claims, a status's type URLs,
// ErrorInfo fields and metadata, a challenge's method and summary, error
// texts that quote them): cli.Printable escapes what a terminal would act
// on, line breaks included, so that a value can neither clear the screen,
// hide the lines after it (the "N problem(s)" verdict) nor print a line
// of its own.
func (in *inspector) line(format string, args ...any) {
	fmt.Fprintln(in.e.stdout, in.indent+cli.Printable(fmt.Sprintf(format, args...)))
}

func (in *inspector) ok(format string, args ...any) { in.line("ok       "+format, args...) }

func (in *inspector) problem(reason, format string, args ...any) {
	in.problems++
	in.line("PROBLEM  "+format+" ("+reason+")", args...)
}

func (in *inspector) unchecked(format string, args ...any) { in.line("unchecked "+format, args...) }

// compact is a compact JWS, decoded but not verified.
type compact struct {
	raw     string
	header  map[string]any
	claims  map[string]any
	payload []byte
}

func decodeJWS(s string) (*compact, error) {
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return nil, fmt.Errorf("%d dot-separated parts, a JWS has 3", len(parts))
	}
	hb, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return nil, fmt.Errorf("header: not base64url: %w", err)
	}
	pb, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, fmt.Errorf("payload: not base64url: %w", err)
	}
	j := &compact{raw: s, payload: pb}
	if err := decodeJSON(hb, &j.header); err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	if err := decodeJSON(pb, &j.claims); err != nil {
		return nil, fmt.Errorf("payload: %w", err)
	}
	return j, nil
}

func decodeJSON(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	return d.Decode(v)
}

func (j *compact) str(m map[string]any, k string) string { s, _ := m[k].(string); return s }

// time of a NumericDate claim, and whether it is there.
func (j *compact) time(k string) (time.Time, bool) {
	n, ok := j.claims[k].(json.Number)
	if !ok {
		return time.Time{}, false
	}
	f, err := n.Float64()
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return time.Time{}, false
	}
	return time.Unix(int64(f), 0), true
}

func (in *inspector) inspect(ctx context.Context, v string) error {
	if strings.Count(v, ".") == 2 {
		j, err := decodeJWS(v)
		if err != nil {
			in.problem("MALFORMED", "not a compact JWS: %v", err)
			return nil
		}
		typ := strings.ToLower(strings.TrimPrefix(j.str(j.header, "typ"), "application/"))
		switch typ {
		case "dpop+jwt":
			return in.proof(ctx, j)
		case challenge.ChallengeType, challenge.GrantType, challenge.AnswerType, challenge.DeviceType:
			in.stepUpToken(j, typ)
			return nil
		default:
			return in.token(ctx, j, typ)
		}
	}
	if b, err := decodeBase64(v); err == nil {
		st := &spb.Status{}
		if proto.Unmarshal(b, st) == nil && (st.GetCode() != 0 || st.GetMessage() != "" || len(st.GetDetails()) > 0) {
			return in.status(ctx, st)
		}
	}
	if !strings.Contains(v, ".") {
		in.problem(string(interceptor.ReasonTokenMalformed), "neither a JWS nor a base64 google.rpc.Status; if it is an access token, "+
			"it is an opaque (non-JWT) one: ask the provider for a JWT access token for your API's audience (docs/PROVIDERS.md)")
		return nil
	}
	in.problem("MALFORMED", "neither a JWS (token, proof, challenge, grant, answer) nor a base64 google.rpc.Status")
	return nil
}

func decodeBase64(s string) ([]byte, error) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, errors.New("not base64")
}

// printClaims prints the header and claims, times with their distance from
// now.
func (in *inspector) printClaims(j *compact) {
	for _, part := range []struct {
		name string
		m    map[string]any
	}{{"header", j.header}, {"claims", j.claims}} {
		keys := make([]string, 0, len(part.m))
		for k := range part.m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			val := part.m[k]
			if part.name == "claims" && secretClaims[k] {
				// The evidence of an answer is a secret: never printed.
				n := 0
				if v, ok := val.(string); ok {
					n = len(v)
				}
				in.line("%-7s %-10s <redacted, %d characters>", part.name, k, n)
				continue
			}
			s, err := json.Marshal(val)
			if err != nil {
				s = []byte(fmt.Sprint(val))
			}
			switch k {
			case "exp", "iat", "nbf", "auth_time":
				if part.name == "claims" {
					if t, ok := j.time(k); ok {
						s = append(s, []byte(fmt.Sprintf("  (%s, %s)", t.UTC().Format(time.RFC3339), ago(in.e.now().Sub(t))))...)
					}
				}
			case "jwk":
				if kb, err := json.Marshal(val); err == nil {
					if jkt, err := dpop.Thumbprint(kb); err == nil {
						s = append(s, []byte("  (thumbprint "+jkt+")")...)
					}
				}
			}
			in.line("%-7s %-10s %s", part.name, k, s)
		}
	}
}

// secretClaims are the evidence claims of an answer (a TOTP code, device
// evidence, a WebAuthn assertion): inspect prints their size only.
var secretClaims = map[string]bool{"otp": true, "dev": true, "wan": true}

// ago says a duration from now in words.
func ago(d time.Duration) string {
	d = d.Round(time.Second)
	switch {
	case d > 0:
		return words(d) + " ago"
	case d < 0:
		return "in " + words(-d)
	}
	return "now"
}

func words(d time.Duration) string {
	if d < time.Minute {
		return fmt.Sprintf("%d s", int(d.Seconds()))
	}
	return d.String()
}

func (in *inspector) token(ctx context.Context, j *compact, typ string) error {
	in.line("an access token (RFC 9068)")
	in.printClaims(j)
	now := in.e.now()
	switch typ {
	case "at+jwt":
		in.ok("typ at+jwt")
	case "jwt", "":
		in.problem(string(interceptor.ReasonTokenBadType), "typ %q: a server refuses it unless it accepts untyped JWTs (allow_untyped_jwt); RFC 9068 says at+jwt", typ)
	default:
		in.problem(string(interceptor.ReasonTokenBadType), "typ %q is not an access token's (at+jwt)", typ)
	}
	if exp, ok := j.time("exp"); !ok {
		in.problem(string(interceptor.ReasonTokenInvalidClaims), "no exp")
	} else if late := now.Sub(exp); late > serverLeeway {
		in.problem(string(interceptor.ReasonTokenExpired), "expired %s ago (servers allow %s of clock skew by default)", words(late.Round(time.Second)), words(serverLeeway))
	} else if late > 0 {
		in.ok("expired %s ago, within the default %s of leeway", words(late.Round(time.Second)), words(serverLeeway))
	} else {
		in.ok("expires in %s", words((-late).Round(time.Second)))
	}
	if nbf, ok := j.time("nbf"); ok && nbf.Sub(now) > serverLeeway {
		in.problem(string(interceptor.ReasonTokenNotYetValid), "not valid for another %s (nbf)", words(nbf.Sub(now).Round(time.Second)))
	}
	if iat, ok := j.time("iat"); ok && iat.Sub(now) > serverLeeway {
		in.problem(string(interceptor.ReasonTokenNotYetValid), "issued %s in the future (iat): a clock is wrong", words(iat.Sub(now).Round(time.Second)))
	}
	if j.str(j.claims, "sub") == "" {
		in.problem(string(interceptor.ReasonTokenInvalidClaims), "no sub")
	}
	cnf, _ := j.claims["cnf"].(map[string]any)
	jkt, _ := cnf["jkt"].(string)
	if jkt == "" {
		in.problem(string(interceptor.ReasonTokenNotBound), "no cnf.jkt: not bound to a DPoP key, so a DPoP method refuses it")
	} else {
		in.ok("bound to the key with thumbprint %s (cnf.jkt)", jkt)
		if in.f.key != "" {
			own, err := in.keyThumbprint()
			if err != nil {
				return err
			}
			if own != jkt {
				in.problem(string(dpop.ReasonKeyMismatch), "cnf.jkt is not this key's thumbprint (%s): proofs signed by %s are refused", own, in.f.key)
			} else {
				in.ok("cnf.jkt is the thumbprint of %s", in.f.key)
			}
		}
	}
	if in.f.jwks == "" {
		in.unchecked("signature, iss and aud (give --jwks FILE --iss URL --aud URL)")
		return nil
	}
	v, err := interceptor.NewJWTVerifier(interceptor.JWTConfig{Issuer: in.f.iss, Audience: in.f.aud, JWKSFile: in.f.jwks,
		Clock: in.e.now, AllowUntypedJWT: typ == "jwt" || typ == ""})
	if err != nil {
		return err
	}
	defer v.Close()
	if _, err := v.VerifyToken(ctx, j.raw); err != nil {
		var te *interceptor.TokenError
		reason := string(interceptor.ReasonTokenVerifierFailed)
		if errors.As(err, &te) {
			reason = string(te.Reason)
		}
		in.problem(reason, "the server's verification fails: %v", err)
	} else {
		in.ok("signature, iss %q and aud %q verify", in.f.iss, in.f.aud)
	}
	return nil
}

func (in *inspector) keyThumbprint() (string, error) {
	pub, err := cli.ReadPublicKey(in.f.key)
	if err != nil {
		return "", err
	}
	return dpop.ThumbprintOf(pub)
}

func (in *inspector) proof(ctx context.Context, j *compact) error {
	in.line("a DPoP proof (RFC 9449)")
	in.printClaims(j)
	now := in.e.now()
	proofKey := ""
	if k, ok := j.header["jwk"]; ok {
		kb, _ := json.Marshal(k)
		if t, err := dpop.Thumbprint(kb); err == nil {
			proofKey = t
		}
	}
	if iat, ok := j.time("iat"); ok {
		age := now.Sub(iat)
		switch {
		case age > 5*time.Minute:
			in.problem(string(dpop.ReasonIssuedTooOld), "issued %s ago: a proof lives seconds (make one per call)", words(age.Round(time.Second)))
		case age < -time.Minute:
			in.problem(string(dpop.ReasonIssuedInFuture), "issued %s in the future: a clock is wrong", words((-age).Round(time.Second)))
		default:
			in.ok("issued %s", ago(age))
		}
	}
	token, err := readValue(in.e, in.f.token)
	if err != nil {
		return err
	}
	var tokenJKT string
	if token != "" {
		if tj, err := decodeJWS(token); err == nil {
			cnf, _ := tj.claims["cnf"].(map[string]any)
			tokenJKT, _ = cnf["jkt"].(string)
		}
		if ath := j.str(j.claims, "ath"); ath != dpop.ATH(token) {
			if ath == "" {
				in.problem(string(dpop.ReasonBadATH), "no ath, but it goes with an access token: make it with --token")
			} else {
				in.problem(string(dpop.ReasonBadATH), "ath is the hash of another token than --token")
			}
		} else {
			in.ok("ath is the hash of --token")
		}
		if tokenJKT != "" && proofKey != "" {
			if tokenJKT != proofKey {
				in.problem(string(dpop.ReasonKeyMismatch), "signed by the key %s, but the token is bound to %s (cnf.jkt): a stolen token, or the wrong key", proofKey, tokenJKT)
			} else {
				in.ok("signed by the key the token is bound to")
			}
		}
	} else {
		in.unchecked("ath and the token binding (give --token FILE)")
	}
	if in.f.key != "" && proofKey != "" {
		own, err := in.keyThumbprint()
		if err != nil {
			return err
		}
		if own != proofKey {
			in.problem(string(dpop.ReasonKeyMismatch), "not signed by %s (thumbprint %s)", in.f.key, own)
		}
	}
	if in.f.method == "" || in.f.authority == "" {
		in.unchecked("htm, htu and the signature as a server checks them (give --method and --authority)")
		return nil
	}
	want := "https://" + in.f.authority + in.f.method
	if htu := j.str(j.claims, "htu"); htu != want && !(in.f.plain && htu == "http://"+in.f.authority+in.f.method) {
		in.line("         htu is %q; this call is to %q", htu, want)
	}
	v, err := dpop.NewVerifier(dpop.WithClock(in.e.now))
	if err != nil {
		return err
	}
	_, err = v.Verify(ctx, dpop.Request{Proof: j.raw, Method: "POST", Authority: in.f.authority, Path: in.f.method,
		AllowHTTP: in.f.plain, AccessToken: token, ExpectedJKT: tokenJKT})
	var de *dpop.ProofError
	switch {
	case err == nil:
		in.ok("the server's proof verification passes for %s on %s", in.f.method, in.f.authority)
	case errors.As(err, &de):
		in.problem(string(de.Reason), "the server's proof verification fails: %s", de.Detail)
	default:
		in.problem("INVALID_DPOP_PROOF", "the server's proof verification fails: %v", err)
	}
	if in.f.nonce != "" && j.str(j.claims, "nonce") != in.f.nonce {
		in.problem(string(dpop.ReasonNonceInvalid), "nonce %q is not the server's current one %q: the client retries with the new one", j.str(j.claims, "nonce"), in.f.nonce)
	}
	return nil
}

// stepUpToken decodes a challenge, grant, answer or device JWS. Challenges
// and grants are signed with the server's key: only their claims and
// expiry are checked here.
func (in *inspector) stepUpToken(j *compact, typ string) {
	names := map[string]string{
		challenge.ChallengeType: "a step-up challenge (signed by the server)",
		challenge.GrantType:     "a step-up grant (signed by the server; a bearer secret bound to a DPoP key)",
		challenge.AnswerType:    "a step-up answer (signed by the client's DPoP key)",
		challenge.DeviceType:    "device-key evidence (signed by a registered device key)",
	}
	in.line("%s", names[typ])
	in.printClaims(j)
	expired := map[string]string{
		challenge.ChallengeType: string(challenge.ReasonChallengeExpired),
		challenge.GrantType:     string(challenge.ReasonGrantExpired),
	}
	if exp, ok := j.time("exp"); ok {
		if late := in.e.now().Sub(exp); late >= 0 {
			reason := expired[typ]
			if reason == "" {
				reason = string(challenge.ReasonChallengeExpired)
			}
			in.problem(reason, "expired %s ago", words(late.Round(time.Second)))
		} else {
			in.ok("expires in %s", words((-late).Round(time.Second)))
		}
	}
	if typ == challenge.AnswerType {
		if ch := j.str(j.claims, "chl"); ch != "" {
			in.line("the challenge it answers:")
			in.indent += "    "
			if cj, err := decodeJWS(ch); err == nil {
				in.stepUpToken(cj, challenge.ChallengeType)
			}
			in.indent = strings.TrimSuffix(in.indent, "    ")
		}
	}
	if typ == challenge.ChallengeType || typ == challenge.GrantType {
		in.unchecked("the signature: it is the server's own (HMAC) key")
	}
}

// status decodes a grpc-status-details-bin value.
func (in *inspector) status(ctx context.Context, st *spb.Status) error {
	var reason, proofHash string
	stepUp := false
	in.line("a gRPC status (grpc-status-details-bin)")
	in.line("code     %s", codes.Code(st.GetCode()))
	in.line("message  %q", st.GetMessage())
	for _, a := range st.GetDetails() {
		m, err := a.UnmarshalNew()
		if err != nil {
			in.line("detail   %s (not decoded: %v)", a.GetTypeUrl(), err)
			continue
		}
		switch d := m.(type) {
		case *errdetails.ErrorInfo:
			in.line("detail   ErrorInfo reason %s, domain %s, metadata %v", d.GetReason(), d.GetDomain(), d.GetMetadata())
			if d.GetDomain() == interceptor.ErrorDomain {
				in.line("         %s", wireMeaning(d.GetReason()))
			}
			if reason == "" {
				reason, proofHash = d.GetReason(), d.GetMetadata()[interceptor.ErrorInfoProofHash]
			}
		case *stepupv1.StepUpChallenge:
			stepUp = true
			in.line("detail   StepUpChallenge for %s: factors %v, acr %v, max_age %s, bound to the request: %v",
				d.GetMethod(), d.GetFactors(), d.GetAcrValues(), d.GetMaxAge().AsDuration(), d.GetBoundToRequest())
			if d.GetSummaryText() != "" {
				in.line("         the user approves: %s", d.GetSummaryText())
			}
			if cj, err := decodeJWS(d.GetChallenge()); err == nil {
				in.indent += "    "
				in.stepUpToken(cj, challenge.ChallengeType)
				in.indent = strings.TrimSuffix(in.indent, "    ")
			}
		default:
			in.line("detail   %s %v", a.GetTypeUrl(), m)
		}
	}
	if codes.Code(st.GetCode()) == codes.OK {
		return nil
	}
	// A refusal is a problem whatever it says: never "no problem found".
	if reason == "" {
		reason = strings.ToUpper(codes.Code(st.GetCode()).String())
	}
	if stepUp {
		in.problem(reason, "the server asks for a step-up: answer the challenge (stepup answer) and retry the same call with a new proof")
	} else {
		in.problem(reason, "the server refused the call")
	}
	return in.refusedProof(ctx, proofHash)
}

// refusedProof checks, with --proof, that the refusal names the proof the
// call sent (its proof_sha256), then checks that proof to name what failed.
func (in *inspector) refusedProof(ctx context.Context, proofHash string) error {
	if in.f.proof == "" {
		if proofHash != "" {
			in.unchecked("which proof was refused, and why (give --proof FILE with --token, --method, --authority)")
		}
		return nil
	}
	proof := in.f.proof
	if strings.Count(proof, ".") != 2 {
		v, err := readValue(in.e, proof)
		if err != nil {
			return err
		}
		proof = v
	}
	sum := sha256.Sum256([]byte(proof))
	own := base64.RawURLEncoding.EncodeToString(sum[:])
	switch proofHash {
	case "":
		in.line("         the refusal names no proof (proof_sha256): the call sent no dpop header, or more than one")
		return nil
	case own:
		in.ok("the refusal is for this proof (proof_sha256 %s)", own)
	default:
		in.problem(interceptor.ErrorInfoProofHash, "the refusal is for another proof: its proof_sha256 is %s, this proof's %s (a refusal of another call, or of another attempt)", proofHash, own)
		return nil
	}
	j, err := decodeJWS(proof)
	if err != nil {
		in.problem(string(dpop.ReasonMalformed), "the proof is not a compact JWS: %v", err)
		return nil
	}
	in.line("the refused proof:")
	in.indent += "    "
	before := in.problems
	err = in.proof(ctx, j)
	in.indent = strings.TrimSuffix(in.indent, "    ")
	if err == nil && in.problems == before {
		in.line("         the proof passes every check made without the server's state: the server's refusal is about the rest " +
			"(a replayed jti, a nonce it no longer accepts, the token, or a step-up; the audit event has the precise reason)")
	}
	return err
}

// wireMeaning explains the wire reasons of a Guard refusal.
func wireMeaning(reason string) string {
	switch reason {
	case interceptor.WireInvalidToken:
		return "the access token is missing, malformed, expired or not trusted (the audit event says which)"
	case interceptor.WireInvalidDPoPProof:
		return "the DPoP proof is missing, malformed, replayed, for another call or another key"
	case interceptor.WireUseDPoPNonce:
		return "make the proof again with the nonce of the dpop-nonce header"
	case interceptor.WireInsufficientUserAuthentication:
		return "step-up required: answer the challenge and retry the same call"
	}
	return ""
}
