// Command mash-open is an independent opener of mash-broker sealed deliveries (docs/delivery-format.md), used by
// tests/interop/test_hpke_interop.py to show that the format is what the document says, not what Python's
// `cryptography` happens to do.
//
// The x25519 suite is opened with Cloudflare's CIRCL HPKE (a module from the Go proxy); the mlkem768-x25519 suite
// with the Go standard library's crypto/hpke (Go 1.26+), because CIRCL's X-Wing takes only the 32-byte X-Wing seed
// as a private key and a mash-broker hybrid key is the expanded pair (ML-KEM-768 seed, X25519 private key).
//
// Input (stdin): {"cases": [{"name", "key_file", "delivery_base64", "subscriber"?, "headers"?}]}, key_file being the subscriber's
// key file text (base64 of the raw private key). Output (stdout): {"results": [{"name", "ok", "event_id",
// "plaintext", "error"}]}, one per case, in order. Exit status 0 unless the input itself is unreadable.
package main

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	stdhpke "crypto/hpke"
	"crypto/mlkem"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	circl "github.com/cloudflare/circl/hpke"
)

const formatVersion = 1

type testCase struct {
	Name           string `json:"name"`
	KeyFile        string `json:"key_file"`
	DeliveryBase64 string `json:"delivery_base64"`
	Subscriber     string `json:"subscriber"`
	// Headers, when given, are the transport's unauthenticated metadata (HTTP entry fields or Kafka headers
	// event_id, decision_id, protocol_version): each must agree with the authenticated plaintext.
	Headers map[string]string `json:"headers"`
}

type result struct {
	Name      string `json:"name"`
	OK        bool   `json:"ok"`
	EventID   string `json:"event_id,omitempty"`
	Plaintext string `json:"plaintext,omitempty"`
	Error     string `json:"error,omitempty"`
}

// delivery is the outer JSON object; every field must be present with its JSON type.
type delivery struct {
	MashDelivery *int    `json:"mash_delivery"`
	Suite        *string `json:"suite"`
	Subscriber   *string `json:"subscriber"`
	EventID      *string `json:"event_id"`
	ContentKeyID *string `json:"content_key_id"`
	ContentKey   *string `json:"content_key"`
	Ciphertext   *string `json:"ciphertext"`
}

const sep = "\x1f"

func info(subscriber, contentKeyID, suite string) []byte {
	return []byte("mash-broker content key v1" + sep + subscriber + sep + contentKeyID + sep + suite)
}

func aad(subscriber, eventID, contentKeyID string) []byte {
	return []byte("mash-delivery-v1" + sep + subscriber + sep + eventID + sep + contentKeyID)
}

// openContentKey is the HPKE step: single-shot base-mode Open of enc || ct with the suite's KEM.
func openContentKey(suite string, priv, sealed, info []byte) ([]byte, error) {
	switch suite {
	case "x25519":
		if len(priv) != 32 {
			return nil, fmt.Errorf("x25519 private key is %d bytes, not 32", len(priv))
		}
		kem := circl.KEM_X25519_HKDF_SHA256
		sk, err := kem.Scheme().UnmarshalBinaryPrivateKey(priv)
		if err != nil {
			return nil, err
		}
		encLen := kem.Scheme().CiphertextSize()
		if len(sealed) < encLen {
			return nil, errors.New("sealed content key shorter than enc")
		}
		s := circl.NewSuite(kem, circl.KDF_HKDF_SHA256, circl.AEAD_AES256GCM)
		r, err := s.NewReceiver(sk, info)
		if err != nil {
			return nil, err
		}
		opener, err := r.Setup(sealed[:encLen])
		if err != nil {
			return nil, err
		}
		return opener.Open(sealed[encLen:], nil)
	case "mlkem768-x25519":
		if len(priv) != 96 {
			return nil, fmt.Errorf("hybrid private key is %d bytes, not 64 + 32", len(priv))
		}
		dk, err := mlkem.NewDecapsulationKey768(priv[:64])
		if err != nil {
			return nil, err
		}
		xk, err := ecdh.X25519().NewPrivateKey(priv[64:])
		if err != nil {
			return nil, err
		}
		k, err := stdhpke.NewHybridPrivateKey(dk, xk)
		if err != nil {
			return nil, err
		}
		if k.KEM().ID() != 0x647a {
			return nil, fmt.Errorf("Go's hybrid KEM id is %#x, not 0x647a", k.KEM().ID())
		}
		return stdhpke.Open(k, stdhpke.HKDFSHA256(), stdhpke.AES256GCM(), info, sealed)
	}
	return nil, fmt.Errorf("unknown suite %q", suite)
}

func open(c testCase) (string, string, error) {
	priv, err := base64.StdEncoding.DecodeString(strings.TrimSpace(c.KeyFile))
	if err != nil {
		return "", "", fmt.Errorf("key file is not base64: %w", err)
	}
	raw, err := base64.StdEncoding.DecodeString(c.DeliveryBase64) // as the HTTP API serves `sealed`
	if err != nil {
		return "", "", fmt.Errorf("delivery is not base64: %w", err)
	}
	var d delivery
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&d); err != nil {
		return "", "", fmt.Errorf("delivery is not JSON: %w", err)
	}
	if d.MashDelivery == nil || d.Suite == nil || d.Subscriber == nil || d.EventID == nil || d.ContentKeyID == nil ||
		d.ContentKey == nil || d.Ciphertext == nil {
		return "", "", errors.New("delivery lacks a field")
	}
	if *d.MashDelivery != formatVersion {
		return "", "", fmt.Errorf("format version %d, not %d", *d.MashDelivery, formatVersion)
	}
	if c.Subscriber != "" && *d.Subscriber != c.Subscriber {
		return "", "", fmt.Errorf("delivery is for %q, not %q", *d.Subscriber, c.Subscriber)
	}
	sealed, err := base64.StdEncoding.DecodeString(*d.ContentKey)
	if err != nil {
		return "", "", fmt.Errorf("content_key is not base64: %w", err)
	}
	key, err := openContentKey(*d.Suite, priv, sealed, info(*d.Subscriber, *d.ContentKeyID, *d.Suite))
	if err != nil {
		return "", "", fmt.Errorf("HPKE open of the content key failed: %w", err)
	}
	body, err := base64.StdEncoding.DecodeString(*d.Ciphertext)
	if err != nil || len(body) < 12+16 {
		return "", "", errors.New("ciphertext is not base64 of nonce || AES-GCM output")
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return "", "", err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return "", "", err
	}
	plain, err := gcm.Open(nil, body[:12], body[12:], aad(*d.Subscriber, *d.EventID, *d.ContentKeyID))
	if err != nil {
		return "", "", errors.New("AES-GCM authentication failed")
	}
	var event struct {
		EventID  string `json:"event_id"`
		Delivery *struct {
			DecisionID      string `json:"decision_id"`
			ProtocolVersion string `json:"protocol_version"`
		} `json:"delivery"`
	}
	if err := json.Unmarshal(plain, &event); err != nil {
		return "", "", errors.New("plaintext is not a JSON object")
	}
	if event.EventID != *d.EventID { // the outer event_id is bound by the aad; the event must name the same one
		return "", "", fmt.Errorf("plaintext event_id %q differs from the delivery's %q", event.EventID, *d.EventID)
	}
	for name, value := range c.Headers {
		var want string
		switch {
		case name == "event_id":
			want = event.EventID
		case name == "decision_id" && event.Delivery != nil:
			want = event.Delivery.DecisionID
		case name == "protocol_version" && event.Delivery != nil:
			want = event.Delivery.ProtocolVersion
		default:
			continue // person.erased has no delivery object: only event_id can be compared
		}
		if value != want {
			return "", "", fmt.Errorf("header %s %q differs from the sealed event's %q", name, value, want)
		}
	}
	return *d.EventID, string(plain), nil
}

func main() {
	var in struct {
		Cases []testCase `json:"cases"`
	}
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		fmt.Fprintln(os.Stderr, "input:", err)
		os.Exit(2)
	}
	out := struct {
		Results []result `json:"results"`
	}{Results: []result{}}
	for _, c := range in.Cases {
		r := result{Name: c.Name}
		eventID, plain, err := open(c)
		if err != nil {
			r.Error = err.Error()
		} else {
			r.OK, r.EventID, r.Plaintext = true, eventID, plain
		}
		out.Results = append(out.Results, r)
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		os.Exit(2)
	}
}
