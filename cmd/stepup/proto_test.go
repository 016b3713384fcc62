package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestVendoredOptionsInAUserBuild follows docs/PROTO.md as a user would: a
// scratch module vendors the options with `stepup proto export`, annotates
// its own API, generates with buf and the pinned local plugins (make
// tools), and a Guard built from the generated code reads its policies.
// The documented buf.gen.yaml must not generate the options' Go code again.
func TestVendoredOptionsInAUserBuild(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	tools := filepath.Join(root, "bin")
	for _, tool := range []string{"buf", "protoc-gen-go", "protoc-gen-go-grpc"} {
		if _, err := os.Stat(filepath.Join(tools, tool)); err != nil {
			msg := "needs the pinned tools: make tools"
			if os.Getenv("CI") != "" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
	}
	dir := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run := func(name string, args ...string) string {
		t.Helper()
		if name == "buf" {
			name = filepath.Join(tools, "buf") // exec looks up names in this process's PATH
		}
		if name == "protoc" {
			// protoc finds protoc-gen-go on the PATH given below.
			name, _ = exec.LookPath("protoc")
		}
		cmd := exec.Command(name, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "PATH="+tools+string(os.PathListSeparator)+os.Getenv("PATH"), "GOFLAGS=-mod=mod")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
		return string(out)
	}

	if out, _, code := stepup(t, dir, "", "proto", "export", "--dir", "third_party"); code != 0 || !strings.Contains(out, "options.proto") {
		t.Fatalf("export: %d %s", code, out)
	}
	// Exporting again is a no-op; a changed file needs --force.
	write("third_party/stepup/v1/gateway.proto", "// edited\n")
	if _, errOut, code := stepup(t, dir, "", "proto", "export", "--dir", "third_party"); code != 1 || !strings.Contains(errOut, "--force") {
		t.Fatalf("export over a changed file: %d %s", code, errOut)
	}
	if _, _, code := stepup(t, dir, "", "proto", "export", "--dir", "third_party", "--force"); code != 0 {
		t.Fatal("export --force failed")
	}

	write("proto/acme/v1/acme.proto", `syntax = "proto3";

package acme.v1;

import "stepup/v1/options.proto";

option go_package = "example.com/acme/gen/acme/v1;acmev1";

// AdminService is a user's API.
service AdminService {
  option (stepup.v1.default_policy) = {scopes: ["admin"]};
  // ListUsers lists users.
  rpc ListUsers(ListUsersRequest) returns (ListUsersResponse);
  // DeleteUser deletes one.
  rpc DeleteUser(DeleteUserRequest) returns (DeleteUserResponse) {
    option (stepup.v1.policy) = {step_up: {factors: [FACTOR_TOTP]}};
  }
}

// ListUsersRequest is empty.
message ListUsersRequest {}

// ListUsersResponse lists names.
message ListUsersResponse {
  // The names.
  repeated string names = 1;
}

// DeleteUserRequest names a user.
message DeleteUserRequest {
  // The name.
  string name = 1;
}

// DeleteUserResponse is empty.
message DeleteUserResponse {}
`)
	// docs/PROTO.md: the workspace holds both; generation takes only yours.
	write("buf.yaml", "version: v2\nmodules:\n  - path: proto\n  - path: third_party\n")
	write("buf.gen.yaml", "version: v2\ninputs:\n  - directory: proto\nplugins:\n  - local: protoc-gen-go\n    out: gen\n    opt: paths=source_relative\n"+
		"  - local: protoc-gen-go-grpc\n    out: gen\n    opt: paths=source_relative\n")
	run("buf", "lint", "proto")
	run("buf", "generate")
	for _, f := range []string{"gen/acme/v1/acme.pb.go", "gen/acme/v1/acme_grpc.pb.go"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	_ = filepath.WalkDir(filepath.Join(dir, "gen"), func(p string, d os.DirEntry, err error) error {
		if err == nil && (strings.HasSuffix(p, "options.pb.go") || strings.Contains(p, "gen/stepup")) {
			t.Errorf("the options' Go code was generated again: %s", p)
		}
		return nil
	})

	// docs/PROTO.md, protoc: the vendored directory on the import path, only
	// your files named.
	if _, err := exec.LookPath("protoc"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("protoc is missing (.ci/run installs Debian's protobuf-compiler)")
		}
		t.Log("protoc is not installed: its path is not checked")
	} else {
		if err := os.MkdirAll(filepath.Join(dir, "gen-protoc"), 0o755); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s", strings.TrimSpace(run("protoc", "--version")))
		run("protoc", "-I", "third_party", "-I", "proto", "--go_out=gen-protoc", "--go_opt=paths=source_relative",
			"--go-grpc_out=gen-protoc", "--go-grpc_opt=paths=source_relative", "proto/acme/v1/acme.proto")
		a, err := os.ReadFile(filepath.Join(dir, "gen-protoc/acme/v1/acme.pb.go"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(dir, "gen-protoc/acme/v1/acme_grpc.pb.go")); err != nil {
			t.Error(err)
		}
		if _, err := os.Stat(filepath.Join(dir, "gen-protoc/stepup")); err == nil {
			t.Error("protoc generated the options' Go code")
		}
		if !strings.Contains(string(a), `"github.com/stepupgrpc/stepup/proto/stepup/v1"`) {
			t.Error("the protoc-generated code does not import the options' package")
		}
		_ = os.RemoveAll(filepath.Join(dir, "gen-protoc"))
	}

	write("go.mod", "module example.com/acme\n\ngo 1.26.0\n\nrequire github.com/stepupgrpc/stepup v0.0.0\n\nreplace github.com/stepupgrpc/stepup => "+root+"\n")
	write("policy_test.go", `package acme_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	acmev1 "example.com/acme/gen/acme/v1"
	"github.com/stepupgrpc/stepup/challenge"
	"github.com/stepupgrpc/stepup/interceptor"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
)

func TestGuardReadsTheVendoredOptions(t *testing.T) {
	_ = acmev1.File_acme_v1_acme_proto
	_ = acmev1.RegisterAdminServiceServer // the --go-grpc_out code builds too
	refuse := interceptor.TokenVerifierFunc(func(context.Context, string) (*interceptor.Token, error) { return nil, errors.New("no") })
	// The step-up annotation is read: without a step-up service New reports
	// that DeleteUser could never be called.
	bare, err := interceptor.New(interceptor.WithRequirePolicy(), interceptor.WithTokenVerifier(refuse))
	if err != nil {
		t.Fatal(err)
	}
	if u := bare.Unenforceable(); len(u) != 1 || !strings.Contains(u[0], "/acme.v1.AdminService/DeleteUser requires step-up") {
		t.Fatalf("Unenforceable without WithStepUp = %q, want DeleteUser", u)
	}
	key, err := challenge.GenerateKey("k1")
	if err != nil {
		t.Fatal(err)
	}
	keys, err := challenge.NewKeySet(key)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := challenge.NewService(challenge.WithKeys(keys), challenge.WithTOTP(challenge.TOTPSecretsMap(nil), challenge.TOTPOptions{}))
	if err != nil {
		t.Fatal(err)
	}
	g, err := interceptor.New(interceptor.WithRequirePolicy(), interceptor.WithTokenVerifier(refuse), interceptor.WithStepUp(svc))
	if err != nil {
		t.Fatal(err)
	}
	p, err := g.Policy("/acme.v1.AdminService/DeleteUser")
	if err != nil {
		t.Fatal(err)
	}
	if p.StepUp == nil || len(p.StepUp.Factors) != 1 || p.StepUp.Factors[0] != stepupv1.Factor_FACTOR_TOTP || len(p.Scopes) != 1 || p.Scopes[0] != "admin" {
		t.Fatalf("DeleteUser's policy: %v", p)
	}
}
`)
	run("go", "mod", "tidy")
	if out := run("go", "test", "-count=1", "./..."); !strings.Contains(out, "ok  \texample.com/acme") {
		t.Fatalf("the scratch module's test:\n%s", out)
	}
}
