//! Walker steps for what carries firmware rather than being it: PE images (with their
//! Authenticode rules), capsules and archives.

use x509_parser::prelude::{FromDer, X509Certificate};

use super::{Walker, issue};
use crate::archive::{self, ArchiveKind, Budget, Problem};
use crate::authenticode::{self, AuthenticodeSignature, PeReport};
use crate::capsule::{self, FmpAuth, FmpItem};
use crate::cert::CertInfo;
use crate::guid;
use crate::pe::{self, PeError};
use crate::pkcs7;
use crate::report::{Evidence, Finding, Node, Severity, Source};
use crate::util::rfc3339;
use crate::{CAP_001, CAP_002, PE_DBX_001, PE_SIG_001, PE_SIG_002, PE_SIG_003};

fn signer_evidence(sig: &AuthenticodeSignature, ev: &mut Evidence) {
    if let Some(s) = &sig.signer {
        ev.cert_subject = Some(s.subject.clone());
        ev.cert_issuer = Some(s.issuer.clone());
        ev.cert_sha1 = Some(s.sha1.clone());
        ev.cert_not_after = Some(rfc3339(s.not_after));
    }
}

fn sig_node(path: &str, i: usize, s: &AuthenticodeSignature) -> Node {
    let state = match (s.valid, &s.trusted_root) {
        (false, _) => format!("invalid: {}", s.problems.join("; ")),
        (true, Some(r)) => format!("valid, chains to {r}"),
        (true, None) => "valid, no configured root".into(),
    };
    Node {
        format: "authenticode".into(),
        path: format!("{path}/sig[{i}]"),
        offset: s.cert_offset,
        size: 0,
        guid: None,
        name: s.signer.as_ref().map(|c| c.subject.clone()),
        detail: Some(format!(
            "{} {} nesting {}: {state}",
            s.digest_algorithm, s.signed_digest, s.nesting
        )),
        children: Vec::new(),
    }
}

impl Walker<'_> {
    fn emit(&mut self, rule: &str, severity: Severity, subject: String, evidence: Evidence) {
        self.findings.push(Finding {
            rule_id: rule.to_string(),
            severity,
            source: Source::Blob,
            subject,
            evidence,
            rule_pack: self.pack.version.clone(),
        });
    }

    /// Routes a buffer by its magic: PE image, archive, capsule, else the FV/varstore search.
    pub(crate) fn scan_blob(&mut self, buf: &[u8], path: &str, depth: u32) -> Vec<Node> {
        if pe::is_pe(buf) {
            return vec![self.walk_pe(buf, 0, path, true)];
        }
        if let Some(kind) = archive::detect(buf) {
            return vec![self.walk_archive(kind, buf, path, depth)];
        }
        if capsule::detect(buf) {
            return vec![self.walk_capsule(buf, path, depth)];
        }
        self.scan_buffer(buf, path, depth)
    }

    /// A PE image; `standalone` images (files, capsule drivers) must be signed (PE-SIG-001),
    /// modules inside firmware volumes need not be.
    pub(crate) fn walk_pe(
        &mut self,
        buf: &[u8],
        offset: usize,
        parent: &str,
        standalone: bool,
    ) -> Node {
        let path = format!("{parent}/pe@{offset:#x}");
        let mut node = Node {
            format: "pe".into(),
            path: path.clone(),
            offset: offset as u64,
            size: buf.len() as u64,
            ..Default::default()
        };
        if !self.enter(&path, offset) {
            return node;
        }
        match authenticode::verify(buf, &self.pack.authenticode_roots) {
            Ok(r) => {
                node.format = if r.pe32_plus { "pe32+" } else { "pe32" }.into();
                self.fill_pe(&mut node, &r, standalone);
            }
            Err(e) => self.corrupt.push(issue(&path, 0, e.to_string())),
        }
        node
    }

    /// A PE32 section of an FFS file: digest and signatures on the section node itself.
    pub(crate) fn pe_section(&mut self, node: &mut Node, body: &[u8], hs: usize) {
        match authenticode::verify(body, &self.pack.authenticode_roots) {
            Ok(r) => self.fill_pe(node, &r, false),
            Err(PeError::NotPe) => self
                .notes
                .push(format!("{}: PE32 section without MZ/PE headers", node.path)),
            Err(e) => self.corrupt.push(issue(&node.path, hs, e.to_string())),
        }
    }

    fn fill_pe(&mut self, node: &mut Node, r: &PeReport, standalone: bool) {
        let path = node.path.clone();
        node.detail = Some(format!(
            "machine {:#x} subsystem {} authenticode sha256 {}, {} signature(s)",
            r.machine,
            r.subsystem,
            r.authenticode_sha256,
            r.signatures.len()
        ));
        node.children.extend(
            r.signatures
                .iter()
                .enumerate()
                .map(|(i, s)| sig_node(&path, i, s)),
        );
        let base = Evidence {
            container_path: Some(path.clone()),
            offset: Some(0),
            hash: Some(r.authenticode_sha256.clone()),
            ..Default::default()
        };
        if let Some(d) = self
            .pack
            .dbx_reference
            .images
            .iter()
            .find(|i| i.sha256 == r.authenticode_sha256)
        {
            let mut ev = base.clone();
            ev.detail = Some(
                format!("{} {}", d.filename, d.description)
                    .trim()
                    .to_string(),
            );
            self.emit(
                PE_DBX_001,
                Severity::High,
                format!("image is revoked by the dbx reference: {}", d.filename),
                ev,
            );
        }
        if r.signatures.is_empty() && standalone {
            self.emit(
                PE_SIG_001,
                Severity::Medium,
                "unsigned EFI binary".into(),
                base.clone(),
            );
        }
        for s in &r.signatures {
            let mut ev = base.clone();
            ev.offset = Some(s.cert_offset);
            signer_evidence(s, &mut ev);
            let who = s
                .signer
                .as_ref()
                .map_or_else(|| "unknown signer".to_string(), |c| c.subject.clone());
            if !s.valid {
                ev.detail = Some(s.problems.join("; "));
                self.emit(
                    PE_SIG_002,
                    Severity::High,
                    format!("invalid Authenticode signature ({who})"),
                    ev,
                );
            } else if s.trusted_root.is_none() {
                let top = s
                    .chain
                    .last()
                    .map_or_else(String::new, |c| c.issuer.clone());
                ev.detail = Some(format!("chain ends at issuer {top}"));
                self.emit(
                    PE_SIG_003,
                    Severity::Medium,
                    format!("signer not under the configured roots ({who})"),
                    ev,
                );
            }
        }
    }

    fn cap_001(&mut self, path: &str, offset: usize, msg: String) {
        self.emit(
            CAP_001,
            Severity::Medium,
            format!("inconsistent capsule: {msg}"),
            Evidence {
                container_path: Some(path.to_string()),
                offset: Some(offset as u64),
                detail: Some(msg),
                ..Default::default()
            },
        );
    }

    /// An EFI_CAPSULE_HEADER capsule; FMP capsules down to their images.
    pub(crate) fn walk_capsule(&mut self, buf: &[u8], parent: &str, depth: u32) -> Node {
        let path = format!("{parent}/capsule@0x0");
        let mut node = Node {
            format: "capsule".into(),
            path: path.clone(),
            size: buf.len() as u64,
            ..Default::default()
        };
        let Ok(h) = capsule::parse_header(buf) else {
            return node;
        };
        node.guid = Some(h.guid.to_string());
        node.detail = Some(format!(
            "header size {:#x} flags {:#x} image size {:#x}",
            h.header_size, h.flags, h.image_size
        ));
        if !self.enter(&path, 0) {
            return node;
        }
        if depth >= self.limits.max_depth {
            self.limited.push(issue(
                &path,
                0,
                format!("nesting deeper than {}", self.limits.max_depth),
            ));
            return node;
        }
        let range = match h.payload(buf.len()) {
            Ok(r) => r,
            Err(e) => {
                self.cap_001(&path, 16, e.to_string());
                return node;
            }
        };
        if h.guid != guid::FMP_CAPSULE {
            let payload = buf.get(range).unwrap_or(&[]);
            node.children = self.scan_blob(payload, &path, depth + 1);
            return node;
        }
        node.format = "fmp-capsule".into();
        let fmp = match capsule::parse_fmp(buf, range) {
            Ok(f) => f,
            Err(e) => {
                let off = match &e {
                    capsule::CapsuleError::Fmp { offset, .. } => *offset,
                    _ => 0,
                };
                self.cap_001(&path, off, e.to_string());
                return node;
            }
        };
        for item in fmp.items {
            match item {
                FmpItem::Driver { range } => {
                    let off = range.start;
                    let b = buf.get(range).unwrap_or(&[]);
                    node.children.push(self.walk_pe(b, off, &path, true));
                }
                FmpItem::Image(img) => {
                    let ipath = format!("{path}/image@{:#x}", img.offset);
                    let mut inode = Node {
                        format: "fmp-image".into(),
                        path: ipath.clone(),
                        offset: img.offset as u64,
                        size: (img.vendor_code.end - img.offset) as u64,
                        guid: Some(img.type_id.to_string()),
                        ..Default::default()
                    };
                    if !self.enter(&ipath, img.offset) {
                        node.children.push(inode);
                        break;
                    }
                    let payload = buf.get(img.payload.clone()).unwrap_or(&[]);
                    let auth = match &img.auth {
                        None => Err("no EFI_FIRMWARE_IMAGE_AUTHENTICATION".to_string()),
                        Some(a) => self.check_fmp_auth(buf, a, payload),
                    };
                    match auth {
                        Ok(who) => {
                            inode.detail = Some(format!("index {} authenticated: {who}", img.index))
                        }
                        Err(why) => {
                            inode.detail = Some(format!("index {} {why}", img.index));
                            self.emit(
                                CAP_002,
                                Severity::High,
                                format!("FMP image {} without valid authentication", img.type_id),
                                Evidence {
                                    container_path: Some(ipath.clone()),
                                    offset: Some(img.offset as u64),
                                    detail: Some(why),
                                    ..Default::default()
                                },
                            );
                        }
                    }
                    inode.children = self.scan_blob(payload, &ipath, depth + 1);
                    node.children.push(inode);
                }
            }
        }
        node
    }

    /// Checks a PKCS#7 image authentication: the detached signature over payload ‖ MonotonicCount.
    /// Returns the signer subject; whose key may sign is the platform's business.
    fn check_fmp_auth(&self, buf: &[u8], a: &FmpAuth, payload: &[u8]) -> Result<String, String> {
        if a.cert_type != guid::CERT_TYPE_PKCS7 {
            return Err(format!(
                "authentication of type {} not checked",
                a.cert_type
            ));
        }
        let der = buf.get(a.cert_data.clone()).unwrap_or(&[]);
        let sd = pkcs7::parse_content_info(der)
            .or_else(|_| pkcs7::parse_signed_data(der))
            .map_err(|e| e.to_string())?;
        let si = sd.signers.first().ok_or("no SignerInfo")?;
        let alg = match si.digest_algorithm.as_str() {
            "2.16.840.1.101.3.4.2.1" => "sha256",
            "2.16.840.1.101.3.4.2.2" => "sha384",
            "2.16.840.1.101.3.4.2.3" => "sha512",
            "1.3.14.3.2.26" => "sha1",
            o => return Err(format!("unsupported digest {o}")),
        };
        let (signer_der, signer) = sd
            .certificates
            .iter()
            .filter_map(|d| {
                X509Certificate::from_der(d)
                    .ok()
                    .map(|(_, c)| (d.as_slice(), c))
            })
            .find(|(_, c)| c.issuer().as_raw() == si.issuer.as_slice())
            .ok_or("signer certificate not in the signature")?;
        let mut msg = payload.to_vec();
        msg.extend_from_slice(&a.monotonic_count.to_le_bytes());
        let key = &signer.public_key().subject_public_key.data;
        match (si.signed_attrs_for_signature(), &si.message_digest) {
            (Some(attrs), Some(md)) => {
                let want = authenticode::hash(alg, &msg);
                if want.as_deref() != Some(md.as_slice()) {
                    return Err("PKCS#7 messageDigest does not match the image".into());
                }
                authenticode::rsa_verify(key, alg, &attrs, &si.signature)?;
            }
            _ => authenticode::rsa_verify(key, alg, &msg, &si.signature)?,
        }
        Ok(CertInfo::from_der(signer_der).map_or_else(|| "signed".into(), |c| c.subject))
    }

    /// An archive or compressed stream: each entry is scanned as a new blob.
    pub(crate) fn walk_archive(
        &mut self,
        kind: ArchiveKind,
        buf: &[u8],
        parent: &str,
        depth: u32,
    ) -> Node {
        let path = format!("{parent}/{}@0x0", kind.name());
        let mut node = Node {
            format: kind.name().into(),
            path: path.clone(),
            size: buf.len() as u64,
            ..Default::default()
        };
        if !self.enter(&path, 0) {
            return node;
        }
        if depth >= self.limits.max_depth {
            self.limited.push(issue(
                &path,
                0,
                format!("nesting deeper than {}", self.limits.max_depth),
            ));
            return node;
        }
        let budget = Budget {
            remaining: self.limits.max_total_bytes.saturating_sub(self.total),
            max_ratio: self.limits.max_ratio,
            max_entries: self.limits.max_entries.saturating_sub(self.entries),
        };
        let mut children = Vec::new();
        let problems = archive::for_each_entry(kind, buf, budget, &mut |e| {
            self.total += e.data.len() as u64;
            if e.name.is_empty() {
                children.extend(self.scan_blob(&e.data, &path, depth + 1));
                return true;
            }
            let epath = format!("{path}/{}", e.name);
            if !self.enter(&epath, 0) {
                return false;
            }
            let kids = self.scan_blob(&e.data, &epath, depth + 1);
            children.push(Node {
                format: "entry".into(),
                path: epath,
                size: e.data.len() as u64,
                name: Some(e.name),
                children: kids,
                ..Default::default()
            });
            true
        });
        node.children = children;
        for p in problems {
            match p {
                Problem::Limit(m) | Problem::PathEscape(m) => self.limited.push(issue(&path, 0, m)),
                Problem::Corrupt(m) => self.corrupt.push(issue(&path, 0, m)),
            }
        }
        node
    }
}
