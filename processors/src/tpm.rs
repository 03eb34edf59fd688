//! The TPM processor: decides each server's registration (compacted `tpm.registrations`, also its
//! changelog) from the API's enrollment outcomes and operator approvals (`tpm.enrollments`).
//!
//! The API has already checked the EK certificate and the AK's credential-activation proof; this
//! processor owns what follows from the history of a server:
//! - a first proven enrollment is `VERIFIED`; a rejected one is recorded as `REJECTED` with its
//!   reason, unless the server already has a registration (a failed attempt never replaces a
//!   verified key: it is kept in `tpm.enrollments` for the audit);
//! - a proven enrollment with the registered EK refreshes the AK, certificate and firmware
//!   version (published only when one of them changed);
//! - a proven enrollment with **another EK** (a board swap, a cleared TPM, or an impostor)
//!   becomes `EK_CHANGED_AWAITING_APPROVAL`, naming the EK it would replace, until an operator
//!   approves that exact EK (`tpm approve`, an approval record with `approved_by`). If the old EK
//!   comes back first, the server returns to `VERIFIED` with it.
//!
//! The health processor reads `tpm.registrations` and turns a pending EK change into a critical
//! health change.

use std::collections::HashMap;

use automata_log::{ConsumedRecord, Record};
use automata_schemas::SchemaIds;
use automata_schemas::catalog::{TPM_ENROLLMENTS, TPM_REGISTRATIONS};
use automata_schemas::types::{TpmRegistration, TpmStatus};

use crate::codec::RecordCodec;
use crate::runtime::{Processor, Rejection};

/// Latest registration per server.
pub struct TpmProcessor {
    codec: RecordCodec,
    servers: HashMap<String, TpmRegistration>,
}

impl TpmProcessor {
    /// A processor that reads and writes with the registered schema `ids`.
    pub fn new(ids: SchemaIds) -> Self {
        TpmProcessor {
            codec: RecordCodec::new(ids),
            servers: HashMap::new(),
        }
    }

    /// The registration held now for a server.
    pub fn registration(&self, server_id: &str) -> Option<&TpmRegistration> {
        self.servers.get(server_id)
    }

    /// The registration `rec` leads to, or `None` when it changes nothing.
    fn decide(&self, rec: TpmRegistration) -> Option<TpmRegistration> {
        let current = self.servers.get(&rec.server_id);
        if let Some(by) = rec.approved_by.clone() {
            return approve(current?, &rec, by);
        }
        let Some(cur) = current else {
            return Some(rec); // the first word about this server, verified or rejected
        };
        match (rec.status, cur.status) {
            (TpmStatus::Verified, _) => enrolled(cur, rec),
            // A failed attempt replaces only a failed or undecided registration.
            (TpmStatus::Rejected, TpmStatus::Rejected | TpmStatus::Pending) => {
                (rec.reason != cur.reason || rec.ek_fingerprint != cur.ek_fingerprint)
                    .then_some(rec)
            }
            _ => None,
        }
    }
}

/// An operator approval of `rec.ek_fingerprint` for a server awaiting one.
fn approve(cur: &TpmRegistration, rec: &TpmRegistration, by: String) -> Option<TpmRegistration> {
    if cur.status != TpmStatus::EkChangedAwaitingApproval
        || cur.ek_fingerprint != rec.ek_fingerprint
    {
        tracing::info!(server_id = %rec.server_id, ek = %short(&rec.ek_fingerprint), "an approval for an EK that is not awaiting one: ignored");
        return None;
    }
    let mut next = cur.clone();
    next.status = TpmStatus::Verified;
    next.reason = format!(
        "EK change from {} approved by {by}",
        cur.previous_ek_fingerprint
            .as_deref()
            .map(short)
            .unwrap_or("-")
    );
    next.approved_by = Some(by);
    next.verified_at = rec.attempted_at;
    next.attempted_at = rec.attempted_at;
    Some(next)
}

/// A proven enrollment for a server that already has a registration.
fn enrolled(cur: &TpmRegistration, mut rec: TpmRegistration) -> Option<TpmRegistration> {
    let trusted_ek = match cur.status {
        TpmStatus::EkChangedAwaitingApproval => cur.previous_ek_fingerprint.as_deref(),
        TpmStatus::Verified => Some(cur.ek_fingerprint.as_str()),
        TpmStatus::Rejected | TpmStatus::Pending => None,
    };
    match trusted_ek {
        // Never verified before: this proof is the first.
        None => Some(rec),
        Some(ek) if ek == rec.ek_fingerprint => {
            let same = cur.status == TpmStatus::Verified
                && cur.ak_name == rec.ak_name
                && cur.ek_certificate_der == rec.ek_certificate_der
                && cur.firmware_version == rec.firmware_version;
            if same {
                return None;
            }
            rec.approved_by = cur.approved_by.clone();
            Some(rec)
        }
        Some(ek) => {
            let waiting_for_this = cur.status == TpmStatus::EkChangedAwaitingApproval
                && cur.ek_fingerprint == rec.ek_fingerprint
                && cur.ak_name == rec.ak_name;
            if waiting_for_this {
                return None;
            }
            rec.status = TpmStatus::EkChangedAwaitingApproval;
            rec.reason = format!(
                "the EK changed from {} to {} (board swap, TPM cleared, or another machine): \
                 approve with `metal-automata tpm approve {}`",
                short(ek),
                short(&rec.ek_fingerprint),
                rec.server_id
            );
            rec.previous_ek_fingerprint = Some(ek.to_string());
            rec.verified_at = None;
            Some(rec)
        }
    }
}

/// A fingerprint as logs and messages show it: its first 16 hex digits.
fn short(fp: &str) -> &str {
    fp.get(..16).unwrap_or(fp)
}

impl Processor for TpmProcessor {
    fn name(&self) -> &'static str {
        "tpm"
    }

    fn inputs(&self) -> Vec<&'static str> {
        vec![TPM_ENROLLMENTS]
    }

    fn changelog(&self) -> Option<&'static str> {
        Some(TPM_REGISTRATIONS)
    }

    fn restore(&mut self, r: &ConsumedRecord) {
        match self.codec.decode::<TpmRegistration>(TPM_REGISTRATIONS, r) {
            Ok(reg) => {
                self.servers.insert(reg.server_id.clone(), reg);
            }
            Err(Rejection(e)) => {
                tracing::warn!(offset = r.offset, error = %e, "skipping an unreadable tpm.registrations record");
            }
        }
    }

    fn process(
        &mut self,
        r: &ConsumedRecord,
        out: &mut Vec<(String, Record)>,
    ) -> Result<(), Rejection> {
        let rec: TpmRegistration = self.codec.decode(TPM_ENROLLMENTS, r)?;
        if rec.server_id.is_empty() {
            return Err(Rejection("an enrollment without a server id".into()));
        }
        let Some(next) = self.decide(rec) else {
            return Ok(());
        };
        let bytes = self.codec.encode(TPM_REGISTRATIONS, &next)?;
        tracing::info!(
            target: "audit",
            server_id = %next.server_id,
            status = ?next.status,
            ek = %short(&next.ek_fingerprint),
            approved_by = next.approved_by.as_deref().unwrap_or(""),
            "TPM registration changed"
        );
        let mut record = Record::new(next.server_id.clone(), bytes);
        if let Some(at) = next.attempted_at {
            record = record.with_timestamp(at);
        }
        out.push((TPM_REGISTRATIONS.to_string(), record));
        self.servers.insert(next.server_id.clone(), next);
        Ok(())
    }
}
