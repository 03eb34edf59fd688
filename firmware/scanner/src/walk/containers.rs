//! Walker steps for what carries firmware rather than being it: PE images (with their
//! Authenticode rules), capsules and archives.

use super::{Walker, issue};
use crate::archive::{self, ArchiveKind, Budget, Problem};
use crate::authenticode::{self, AuthenticodeSignature, PeReport};
use crate::capsule::{self, FmpAuth, FmpItem};
use crate::guid;
use crate::jcat::{self, Jcat, SignatureStatus};
use crate::package::{self, Digests, PackageSignature};
use crate::pe::{self, PeError};
use crate::report::{Evidence, Finding, Node, Severity, Source};
use crate::signed::{self, Verdict};
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

/// What one cab member's jcat item said.
struct MemberVerdict {
    verdict: Option<Verdict>,
    signer: Option<String>,
    root: Option<String>,
    detail: String,
}

impl MemberVerdict {
    fn invalid(detail: String) -> Self {
        MemberVerdict {
            verdict: Some(Verdict::Invalid),
            signer: None,
            root: None,
            detail,
        }
    }
}

/// The PE's summary line and one child node per signature.
fn describe_pe(node: &mut Node, r: &PeReport) {
    node.detail = Some(format!(
        "machine {:#x} subsystem {} authenticode sha256 {}, {} signature(s)",
        r.machine,
        r.subsystem,
        r.authenticode_sha256,
        r.signatures.len()
    ));
    let path = node.path.clone();
    node.children.extend(
        r.signatures
            .iter()
            .enumerate()
            .map(|(i, s)| sig_node(&path, i, s)),
    );
}

/// An Authenticode signature's verdict in package terms.
fn sig_verdict(s: &AuthenticodeSignature) -> Verdict {
    match (s.valid, &s.trusted_root) {
        (false, _) => Verdict::Invalid,
        (true, Some(_)) => Verdict::Valid,
        (true, None) => Verdict::Untrusted,
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
        // A top-level Windows executable (GUI or console subsystem) is a vendor update
        // package such as a Dell DUP: its Authenticode is the package signature.
        let dup = parent.is_empty() && pe::parse(buf).is_ok_and(|i| matches!(i.subsystem, 2 | 3));
        let roots = if dup {
            &self.pack.package_roots
        } else {
            &self.pack.authenticode_roots
        };
        match authenticode::verify(buf, roots) {
            Ok(r) => {
                node.format = if r.pe32_plus { "pe32+" } else { "pe32" }.into();
                if dup {
                    describe_pe(&mut node, &r);
                    self.dup_package(&path, &r);
                } else {
                    self.fill_pe(&mut node, &r, standalone);
                }
            }
            Err(e) => self.corrupt.push(issue(&path, 0, e.to_string())),
        }
        node
    }

    /// PKG-SIG-00x for a DUP: the best Authenticode signature decides.
    fn dup_package(&mut self, path: &str, r: &PeReport) {
        let best = r.signatures.iter().max_by_key(|s| sig_verdict(s));
        let pkg = PackageSignature {
            format: "dup-authenticode".into(),
            verdict: best.map(sig_verdict),
            signer: best.and_then(|s| s.signer.as_ref().map(|c| c.subject.clone())),
            trusted_root: best.and_then(|s| s.trusted_root.clone()),
            detail: match best {
                None => "Windows executable without an Authenticode signature".into(),
                Some(s) if s.valid => {
                    format!("Authenticode {} {}", s.digest_algorithm, s.signed_digest)
                }
                Some(s) => s.problems.join("; "),
            },
        };
        let mut ev = Evidence {
            container_path: Some(path.to_string()),
            offset: Some(best.map_or(0, |s| s.cert_offset)),
            hash: Some(r.authenticode_sha256.clone()),
            detail: Some(pkg.detail.clone()),
            ..Default::default()
        };
        if let Some(s) = best {
            signer_evidence(s, &mut ev);
        }
        self.package_finding(&pkg, ev);
        self.package.get_or_insert(pkg);
    }

    /// Emits the PKG-SIG rule a package verdict calls for.
    fn package_finding(&mut self, pkg: &PackageSignature, ev: Evidence) {
        if let Some((rule, severity)) = package::rule_for(pkg.verdict) {
            let who = pkg
                .signer
                .clone()
                .unwrap_or_else(|| "unknown signer".into());
            let subject = match pkg.verdict {
                None => format!("package without its own signature ({})", pkg.format),
                Some(Verdict::Invalid) => format!("package signature does not verify ({who})"),
                Some(Verdict::UnsupportedAlgorithm) => {
                    format!("package signature uses an algorithm this build cannot verify ({who})")
                }
                Some(_) => format!("package signer not under the configured roots ({who})"),
            };
            self.emit(rule, severity, subject, ev);
        }
    }

    /// PKG-SIG-00x for a cab: every member its jcat names is checked (Kind 1 SHA-256 and
    /// PKCS#7 blobs against the package roots); the package is as good as its worst member.
    fn cab_package(
        &mut self,
        path: &str,
        members: &[(String, Digests)],
        jcats: &[(String, Vec<u8>)],
    ) {
        let mut verdicts: Vec<MemberVerdict> = Vec::new();
        for (jname, raw) in jcats {
            let json = if raw.starts_with(&[0x1F, 0x8B]) {
                archive::gunzip(raw, 64 << 20).map_err(|p| format!("{p:?}"))
            } else {
                Ok(raw.clone())
            };
            let parsed = json.and_then(|j| Jcat::from_json(&j).map_err(|e| e.to_string()));
            let jc = match parsed {
                Ok(j) => j,
                Err(e) => {
                    verdicts.push(MemberVerdict::invalid(format!(
                        "{jname}: unreadable jcat: {e}"
                    )));
                    continue;
                }
            };
            for (mname, digests) in members {
                let Some(item) = jc.resolve(mname) else {
                    continue;
                };
                if let Some(want) = item.sha256()
                    && want != digests.sha256_hex()
                {
                    verdicts.push(MemberVerdict::invalid(format!(
                        "{mname}: jcat sha256 {want} but the member hashes to {}",
                        digests.sha256_hex()
                    )));
                    continue;
                }
                let sigs =
                    jcat::check_signatures(item, &|alg| digests.get(alg), &self.pack.package_roots);
                let verdict = jcat::summarise(&sigs);
                let chosen = sigs.iter().find(|s| Some(s.status.verdict()) == verdict);
                let (signer, root) = match chosen.map(|s| &s.status) {
                    Some(SignatureStatus::Valid { signer, root }) => {
                        (Some(signer.clone()), Some(root.clone()))
                    }
                    Some(SignatureStatus::Untrusted { signer, .. }) => (Some(signer.clone()), None),
                    _ => (None, None),
                };
                let detail = sigs
                    .iter()
                    .map(|s| serde_json::to_string(&s.status).unwrap_or_default())
                    .collect::<Vec<_>>()
                    .join("; ");
                verdicts.push(MemberVerdict {
                    verdict,
                    signer,
                    root,
                    detail: format!("{mname}: {detail}"),
                });
            }
        }
        // Invalid first, then unsigned, then unsupported, untrusted and valid.
        let rank = |v: &Option<Verdict>| match v {
            Some(Verdict::Invalid) => 0,
            None => 1,
            Some(Verdict::UnsupportedAlgorithm) => 2,
            Some(Verdict::Untrusted) => 3,
            Some(Verdict::Valid) => 4,
        };
        let worst = verdicts.iter().min_by_key(|v| rank(&v.verdict));
        let pkg = match worst {
            None => PackageSignature {
                format: "cab-jcat".into(),
                verdict: None,
                signer: None,
                trusted_root: None,
                detail: if jcats.is_empty() {
                    "cab without a .jcat".into()
                } else {
                    "the cab's jcat names none of its members".into()
                },
            },
            Some(m) => PackageSignature {
                format: "cab-jcat".into(),
                verdict: m.verdict,
                signer: m.signer.clone(),
                trusted_root: m.root.clone(),
                detail: m.detail.clone(),
            },
        };
        let ev = Evidence {
            container_path: Some(path.to_string()),
            offset: Some(0),
            detail: Some(pkg.detail.clone()),
            cert_subject: pkg.signer.clone(),
            ..Default::default()
        };
        self.package_finding(&pkg, ev);
        if path.matches('/').count() == 1 {
            self.package.get_or_insert(pkg);
        }
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
        describe_pe(node, r);
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
        let mut msg = payload.to_vec();
        msg.extend_from_slice(&a.monotonic_count.to_le_bytes());
        let v = signed::verify_detached_bytes(der, &msg, &[]);
        match v.verdict {
            Verdict::Valid | Verdict::Untrusted => {
                Ok(v.signer.map_or_else(|| "signed".into(), |c| c.subject))
            }
            _ => Err(v.problems.join("; ")),
        }
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
        let is_cab = kind == ArchiveKind::Cab;
        let mut members: Vec<(String, Digests)> = Vec::new();
        let mut jcats: Vec<(String, Vec<u8>)> = Vec::new();
        let problems = archive::for_each_entry(kind, buf, budget, &mut |e| {
            self.total += e.data.len() as u64;
            if is_cab && !e.name.is_empty() {
                if e.name.ends_with(".jcat") {
                    jcats.push((e.name.clone(), e.data.clone()));
                } else {
                    members.push((e.name.clone(), Digests::of(&e.data)));
                }
            }
            if e.name.is_empty() {
                self.yara_scan(&e.data, &path);
                children.extend(self.scan_blob(&e.data, &path, depth + 1));
                return true;
            }
            let epath = format!("{path}/{}", e.name);
            if !self.enter(&epath, 0) {
                return false;
            }
            // A stored member's bytes were in the archive's buffer the rules already ran over:
            // scanning them again would report each match twice.
            if !e.stored {
                self.yara_scan(&e.data, &epath);
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
        if is_cab {
            self.cab_package(&path, &members, &jcats);
        }
        for p in problems {
            match p {
                Problem::Limit(m) | Problem::PathEscape(m) => self.limited.push(issue(&path, 0, m)),
                Problem::Corrupt(m) => self.corrupt.push(issue(&path, 0, m)),
            }
        }
        node
    }
}
