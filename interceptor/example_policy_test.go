package interceptor_test

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"

	bankv1 "github.com/stepupgrpc/stepup/examples/bank/v1"
	"github.com/stepupgrpc/stepup/interceptor"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
)

// A service default never weakens a method's own requirement: here the
// service says insecure_no_authentication and one of its methods asks for a
// scope, as if its .proto read
//
//	service AdminService {
//	  option (stepup.v1.default_policy) = { insecure_no_authentication: true };
//	  rpc DeleteUser(Req) returns (Req) {
//	    option (stepup.v1.policy) = { scopes: ["admin"] };
//	  }
//	}
//
// New refuses to build the Guard, naming the method and both fields.
func ExamplePolicyConflictError() {
	svcOpts, methodOpts := &descriptorpb.ServiceOptions{}, &descriptorpb.MethodOptions{}
	proto.SetExtension(svcOpts, stepupv1.E_DefaultPolicy, &stepupv1.Policy{InsecureNoAuthentication: proto.Bool(true)})
	proto.SetExtension(methodOpts, stepupv1.E_Policy, &stepupv1.Policy{Scopes: []string{"admin"}})
	fd, err := protodesc.NewFile(&descriptorpb.FileDescriptorProto{
		Name: proto.String("admin/v1/admin.proto"), Package: proto.String("admin.v1"), Syntax: proto.String("proto3"),
		Dependency:  []string{"stepup/v1/options.proto"},
		MessageType: []*descriptorpb.DescriptorProto{{Name: proto.String("Req")}},
		Service: []*descriptorpb.ServiceDescriptorProto{{Name: proto.String("AdminService"), Options: svcOpts,
			Method: []*descriptorpb.MethodDescriptorProto{{Name: proto.String("DeleteUser"),
				InputType: proto.String(".admin.v1.Req"), OutputType: proto.String(".admin.v1.Req"), Options: methodOpts}}}},
	}, protoregistry.GlobalFiles)
	if err != nil {
		panic(err)
	}
	files := new(protoregistry.Files)
	_ = files.RegisterFile(fd)

	_, err = interceptor.New(interceptor.WithFiles(files))
	var conflict *interceptor.PolicyConflictError
	if errors.As(err, &conflict) {
		fmt.Println(conflict.Method)
		fmt.Println(conflict.Field, "contradicts", conflict.Other)
	}
	// Output:
	// /admin.v1.AdminService/DeleteUser
	// policy.scopes contradicts default_policy.insecure_no_authentication
}

// ExampleResolvePolicies prints what a Guard would enforce on each method
// of the bank's API, its annotations merged (Transfer's scopes are the
// service's and its own), without building a Guard.
func ExampleResolvePolicies() {
	files := new(protoregistry.Files)
	_ = files.RegisterFile(bankv1.File_bank_v1_bank_proto)
	report, err := interceptor.ResolvePolicies(files)
	if err != nil {
		panic(err)
	}
	for _, m := range report {
		if m.FullMethod == "/bank.v1.BankService/GetBalance" || m.FullMethod == "/bank.v1.BankService/Transfer" {
			fmt.Println(m.FullMethod, m.Policy.Scopes, m.Policy.StepUp != nil)
		}
	}
	// Output:
	// /bank.v1.BankService/GetBalance [bank] false
	// /bank.v1.BankService/Transfer [bank bank:transfer] true
}
