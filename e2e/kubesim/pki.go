package main

// Generated TLS and credential material for one kubesim state directory.
//
// Everything lives in DIR/pki and is created once; a restart with the same
// DIR reuses it, so kubeconfigs and service-account tokens issued earlier stay
// valid across restarts (etcd data in DIR/etcd is kept too).
//
// All keys are ECDSA P-256: cheap to generate on a 2-core machine and accepted
// by kube-apiserver for serving, client certificates and service-account
// signing (ES256).

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// pkiFiles names every file ensurePKI writes, relative to DIR.
type pkiFiles struct {
	Dir         string // DIR/pki
	CACert      string // CA that signs the serving and client certificates
	CAKey       string
	ServingCert string // kube-apiserver serving certificate (127.0.0.1, localhost, in-cluster names)
	ServingKey  string
	AdminCert   string // client certificate CN=kubesim-admin, O=system:masters; also the kubelet client cert
	AdminKey    string
	SAKey       string // service-account signing key (private; the apiserver derives the public half)
	TokenFile   string // --token-auth-file: one static token in group system:masters
}

func newPKIFiles(dir string) pkiFiles {
	p := filepath.Join(dir, "pki")
	return pkiFiles{
		Dir:         p,
		CACert:      filepath.Join(p, "ca.crt"),
		CAKey:       filepath.Join(p, "ca.key"),
		ServingCert: filepath.Join(p, "apiserver.crt"),
		ServingKey:  filepath.Join(p, "apiserver.key"),
		AdminCert:   filepath.Join(p, "admin.crt"),
		AdminKey:    filepath.Join(p, "admin.key"),
		SAKey:       filepath.Join(p, "sa.key"),
		TokenFile:   filepath.Join(p, "tokens.csv"),
	}
}

func (f pkiFiles) all() []string {
	return []string{f.CACert, f.CAKey, f.ServingCert, f.ServingKey, f.AdminCert, f.AdminKey, f.SAKey, f.TokenFile}
}

// ensurePKI creates the material if any file is missing (all of it, so the
// set is always consistent) and returns the admin bearer token.
func ensurePKI(f pkiFiles) (adminToken string, err error) {
	complete := true
	for _, name := range f.all() {
		if _, err := os.Stat(name); err != nil {
			complete = false
			break
		}
	}
	if !complete {
		if err := generatePKI(f); err != nil {
			return "", err
		}
	}
	return readAdminToken(f.TokenFile)
}

func generatePKI(f pkiFiles) error {
	if err := os.MkdirAll(f.Dir, 0o700); err != nil {
		return err
	}
	now := time.Now()
	caKey, err := newKey()
	if err != nil {
		return err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "kubesim-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}

	leaf := func(tmpl *x509.Certificate, certPath, keyPath string) error {
		key, err := newKey()
		if err != nil {
			return err
		}
		tmpl.SerialNumber = serial()
		tmpl.NotBefore = now.Add(-time.Hour)
		tmpl.NotAfter = now.AddDate(10, 0, 0)
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			return err
		}
		if err := writePEM(certPath, "CERTIFICATE", der, 0o644); err != nil {
			return err
		}
		return writeKey(keyPath, key)
	}

	serving := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "kube-apiserver"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1"), net.ParseIP("10.96.0.1")},
		DNSNames: []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
			"kubernetes.default.svc.cluster.local"},
	}
	if err := leaf(serving, f.ServingCert, f.ServingKey); err != nil {
		return err
	}
	admin := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "kubesim-admin", Organization: []string{"system:masters"}},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if err := leaf(admin, f.AdminCert, f.AdminKey); err != nil {
		return err
	}
	saKey, err := newKey()
	if err != nil {
		return err
	}
	if err := writeKey(f.SAKey, saKey); err != nil {
		return err
	}

	tok := make([]byte, 32)
	if _, err := rand.Read(tok); err != nil {
		return err
	}
	// token,user,uid,"group1,group2" — the format of --token-auth-file.
	line := fmt.Sprintf("%s,kubesim-admin,kubesim-admin,\"system:masters\"\n", hex.EncodeToString(tok))
	if err := os.WriteFile(f.TokenFile, []byte(line), 0o600); err != nil {
		return err
	}
	// The CA last: its presence is not what marks the set complete, all files are.
	if err := writeKey(f.CAKey, caKey); err != nil {
		return err
	}
	return writePEM(f.CACert, "CERTIFICATE", caDER, 0o644)
}

func readAdminToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	for i, c := range b {
		if c == ',' {
			return string(b[:i]), nil
		}
	}
	return "", errors.New("kubesim: malformed " + path)
}

func newKey() (*ecdsa.PrivateKey, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) }

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		panic(err)
	}
	return n
}

func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	return writePEM(path, "EC PRIVATE KEY", der, 0o600)
}

func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode)
}
