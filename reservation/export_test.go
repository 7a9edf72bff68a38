package reservation

// ScriptSHAs returns, by name, the SHA1 every script is called by (for
// tests).
func (l *Ledger) ScriptSHAs() map[string]string {
	out := map[string]string{}
	for _, s := range l.scripts() {
		out[s.name] = s.sha
	}
	return out
}
