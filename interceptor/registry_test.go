package interceptor_test

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"

	policytestv1 "github.com/stepupgrpc/stepup/interceptor/internal/testproto/policytest/v1"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
)

// reannotated returns a registry holding the policytest file with some of
// its annotations replaced, as if its .proto said so: keys are service names
// ("policytest.v1.GuardedService", its default_policy) and full methods
// ("/policytest.v1.GuardedService/Plain", its policy); a nil value removes
// the annotation. The generated handlers still serve the methods.
func reannotated(t testing.TB, policies map[string]*stepupv1.Policy) *protoregistry.Files {
	t.Helper()
	fdp := protodesc.ToFileDescriptorProto(policytestv1.File_policytest_v1_policytest_proto)
	used := map[string]bool{}
	for _, sd := range fdp.Service {
		svc := "policytest.v1." + sd.GetName()
		if p, ok := policies[svc]; ok {
			used[svc] = true
			sd.Options = &descriptorpb.ServiceOptions{}
			if p != nil {
				proto.SetExtension(sd.Options, stepupv1.E_DefaultPolicy, p)
			}
		}
		for _, md := range sd.Method {
			full := "/" + svc + "/" + md.GetName()
			if p, ok := policies[full]; ok {
				used[full] = true
				md.Options = &descriptorpb.MethodOptions{}
				if p != nil {
					proto.SetExtension(md.Options, stepupv1.E_Policy, p)
				}
			}
		}
	}
	for name := range policies {
		if !used[name] {
			t.Fatalf("reannotated: %s is not in policytest.proto", name)
		}
	}
	return registryOf(t, fdp)
}

// svcName returns the service of a full method.
func svcName(fullMethod string) string {
	return fullMethod[1:strings.LastIndexByte(fullMethod, '/')]
}

// oneMethodFiles builds a registry holding one service, invalid.v1.Svc,
// with one unary method M (full name /invalid.v1.Svc/M) and the given
// service default and method policy (nil: none).
func oneMethodFiles(t testing.TB, svc, own *stepupv1.Policy) *protoregistry.Files {
	t.Helper()
	mopts, sopts := &descriptorpb.MethodOptions{}, &descriptorpb.ServiceOptions{}
	if own != nil {
		proto.SetExtension(mopts, stepupv1.E_Policy, own)
	}
	if svc != nil {
		proto.SetExtension(sopts, stepupv1.E_DefaultPolicy, svc)
	}
	fdp := &descriptorpb.FileDescriptorProto{
		Name:        proto.String("invalid/v1/invalid.proto"),
		Package:     proto.String("invalid.v1"),
		Syntax:      proto.String("proto3"),
		Dependency:  []string{"stepup/v1/options.proto"},
		MessageType: []*descriptorpb.DescriptorProto{{Name: proto.String("Req")}},
		Service: []*descriptorpb.ServiceDescriptorProto{{
			Name:    proto.String("Svc"),
			Options: sopts,
			Method: []*descriptorpb.MethodDescriptorProto{{
				Name: proto.String("M"), InputType: proto.String(".invalid.v1.Req"), OutputType: proto.String(".invalid.v1.Req"), Options: mopts,
			}},
		}},
	}
	return registryOf(t, fdp)
}

// registryOf builds a registry holding fdp alone (its imports resolved from
// the global registry).
func registryOf(t testing.TB, fdp *descriptorpb.FileDescriptorProto) *protoregistry.Files {
	t.Helper()
	fd, err := protodesc.NewFile(fdp, protoregistry.GlobalFiles)
	if err != nil {
		t.Fatal(err)
	}
	files := new(protoregistry.Files)
	if err := files.RegisterFile(fd); err != nil {
		t.Fatal(err)
	}
	return files
}
