package engine

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
)

// derive returns a 32-hex-character HMAC-SHA256 of purpose and id under key.
func derive(key, purpose, id string) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(purpose + ":" + id))
	return hex.EncodeToString(m.Sum(nil))[:32]
}

// StoreToken returns a store's bearer token: the store id and an HMAC of it
// keyed by the operator's secret, so a token names its store and cannot be
// forged for another. Rotating the secret rotates every store token.
func StoreToken(secret, storeID string) string {
	return storeID + "." + derive(secret, "store", storeID)
}

// WebhookSecret returns the secret a store's webhooks are signed with,
// derived from the operator's secret.
func WebhookSecret(secret, storeID string) string {
	return "whsec_" + derive(secret, "webhook", storeID)
}
