package webauthn

import (
	"reflect"
	"testing"
)

// TestCredentialMappingKeepsEveryField: a credential record survives the
// trip through go-webauthn's type and back, every field of it: a field
// added to Credential without its mapping fails here.
func TestCredentialMappingKeepsEveryField(t *testing.T) {
	var c Credential
	v := reflect.ValueOf(&c).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		switch f.Kind() {
		case reflect.String:
			f.SetString("value-of-" + v.Type().Field(i).Name)
		case reflect.Bool:
			f.SetBool(true)
		case reflect.Uint32:
			f.SetUint(uint64(7 + i))
		case reflect.Slice:
			switch f.Type().Elem().Kind() {
			case reflect.Uint8:
				f.SetBytes([]byte("bytes-of-" + v.Type().Field(i).Name))
			case reflect.String:
				f.Set(reflect.ValueOf([]string{"usb", "hybrid"}))
			default:
				t.Fatalf("field %s: no test value for %s", v.Type().Field(i).Name, f.Type())
			}
		default:
			t.Fatalf("field %s: no test value for %s", v.Type().Field(i).Name, f.Type())
		}
	}
	if got := fromLibraryCredential(toLibraryCredential(c)); !reflect.DeepEqual(got, c) {
		t.Fatalf("round trip\n got %+v\nwant %+v", got, c)
	}
	// Each flag on its own maps to its own flag.
	for _, name := range []string{"UserPresent", "UserVerified", "BackupEligible", "BackupState"} {
		var one Credential
		reflect.ValueOf(&one).Elem().FieldByName(name).SetBool(true)
		if got := fromLibraryCredential(toLibraryCredential(one)); !reflect.DeepEqual(got, one) {
			t.Errorf("%s alone: got %+v", name, got)
		}
	}
}
