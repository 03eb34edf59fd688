// Metal Automata's shipped YARA pack (Apache-2.0, like the rest of the project).
// Metadata the scanner reads: `severity` (critical|high|medium|info, default medium) and
// `description`. Findings are YARA-<rule name>.

rule PrivateKeyInFirmware
{
    meta:
        severity = "high"
        description = "PEM private key material inside a firmware blob: whoever has the image has the key (signing keys, TLS or SSH host keys shipped by mistake)"
    strings:
        $rsa = "-----BEGIN RSA PRIVATE KEY-----"
        $ec = "-----BEGIN EC PRIVATE KEY-----"
        $pkcs8 = "-----BEGIN PRIVATE KEY-----"
        $enc = "-----BEGIN ENCRYPTED PRIVATE KEY-----"
        $dsa = "-----BEGIN DSA PRIVATE KEY-----"
        $ssh = "-----BEGIN OPENSSH PRIVATE KEY-----"
        $pgp = "-----BEGIN PGP PRIVATE KEY BLOCK-----"
    condition:
        any of them
}
