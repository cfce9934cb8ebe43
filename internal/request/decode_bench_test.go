package request_test

import (
	"testing"

	"github.com/scopegate/scopegate/internal/request"
)

func BenchmarkDecodeTypical(b *testing.B) {
	body := []byte(`{"subject":"app:translator-bot","client_id":"abc","granted_scopes":["user:read","user:email","project:write","glossary:read"],"method":"POST","path":"/projects/42/launch","context":{"ip":"10.0.0.1","api_token":"secret"}}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, e := request.DecodeBytes(body); e != nil {
			b.Fatal(e)
		}
	}
}
