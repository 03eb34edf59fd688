//! The TPM processor decides registrations from enrollment outcomes: the first proof verifies, a
//! failed attempt never replaces a verified key, a new EK waits for an operator's approval of
//! exactly that EK, and a restart restores from its own `tpm.registrations` output.

use std::collections::HashMap;

use automata_log::{ConsumedRecord, Record};
use automata_processors::Processor;
use automata_processors::tpm::TpmProcessor;
use automata_schemas::catalog::{TPM_ENROLLMENTS, TPM_REGISTRATIONS, topic};
use automata_schemas::types::{TpmRegistration, TpmStatus};
use automata_schemas::{SchemaIds, decode, encode};

fn ids() -> SchemaIds {
    SchemaIds::new(HashMap::from([
        (TPM_ENROLLMENTS.to_string(), 31),
        (TPM_REGISTRATIONS.to_string(), 32),
    ]))
}

fn enrollment(ek: &str, ak: &str, status: TpmStatus, at: i64) -> TpmRegistration {
    TpmRegistration {
        server_id: "srv-1".into(),
        ek_fingerprint: ek.repeat(32),
        ak_name: ak.into(),
        ak_public: vec![1, 2, 3],
        status,
        reason: if status == TpmStatus::Rejected {
            "the AK is not on this TPM".into()
        } else {
            String::new()
        },
        verified_at: (status == TpmStatus::Verified).then_some(at),
        certificate_status: "trusted".into(),
        attempted_at: Some(at),
        ..Default::default()
    }
}

/// Feeds one enrollment; returns the registration published, if any.
fn feed(p: &mut TpmProcessor, rec: &TpmRegistration) -> Option<(Record, TpmRegistration)> {
    let r = ConsumedRecord {
        topic: TPM_ENROLLMENTS.into(),
        partition: 0,
        offset: 0,
        record: Record::new(
            rec.server_id.clone(),
            encode(topic(TPM_ENROLLMENTS).expect("spec"), 31, rec).expect("encode"),
        ),
    };
    let mut out = Vec::new();
    p.process(&r, &mut out).expect("processed");
    assert!(out.len() <= 1);
    let (t, record) = out.pop()?;
    assert_eq!(t, TPM_REGISTRATIONS);
    let value = record.value.clone().expect("value");
    let reg = decode(topic(TPM_REGISTRATIONS).expect("spec"), 32, &value).expect("decode");
    Some((record, reg))
}

#[test]
fn an_ek_change_waits_for_the_approval_of_that_ek() {
    let mut p = TpmProcessor::new(ids());
    let (_, first) = feed(&mut p, &enrollment("aa", "ak1", TpmStatus::Verified, 1)).expect("out");
    assert_eq!(first.status, TpmStatus::Verified);
    // The same EK and AK again: nothing to publish.
    assert!(feed(&mut p, &enrollment("aa", "ak1", TpmStatus::Verified, 2)).is_none());
    // A new AK on the same TPM: refreshed.
    let (_, ak2) = feed(&mut p, &enrollment("aa", "ak2", TpmStatus::Verified, 3)).expect("out");
    assert_eq!(
        (ak2.status, ak2.ak_name.as_str()),
        (TpmStatus::Verified, "ak2")
    );
    // A failed attempt does not replace the verified key.
    assert!(feed(&mut p, &enrollment("bb", "akx", TpmStatus::Rejected, 4)).is_none());
    assert_eq!(p.registration("srv-1").expect("reg").ak_name, "ak2");

    // Another EK, proven: waits for approval, naming the EK it would replace.
    let (_, changed) = feed(&mut p, &enrollment("cc", "ak3", TpmStatus::Verified, 5)).expect("out");
    assert_eq!(changed.status, TpmStatus::EkChangedAwaitingApproval);
    assert_eq!(changed.previous_ek_fingerprint, Some("aa".repeat(32)));
    assert!(
        changed.reason.contains("tpm approve srv-1"),
        "{}",
        changed.reason
    );

    // An approval of another EK changes nothing; of this EK, verifies it.
    let mut wrong = enrollment("dd", "", TpmStatus::Verified, 6);
    wrong.approved_by = Some("alice".into());
    assert!(feed(&mut p, &wrong).is_none());
    let mut ok = enrollment("cc", "", TpmStatus::Verified, 7);
    ok.approved_by = Some("alice".into());
    let (_, approved) = feed(&mut p, &ok).expect("out");
    assert_eq!(approved.status, TpmStatus::Verified);
    assert_eq!(approved.approved_by.as_deref(), Some("alice"));
    assert_eq!(
        approved.ak_name, "ak3",
        "the approved registration keeps the proven AK"
    );
    assert_eq!(approved.verified_at, Some(7));
}

#[test]
fn the_old_ek_coming_back_ends_the_wait_and_a_restart_restores() {
    let mut p = TpmProcessor::new(ids());
    let log = [
        feed(&mut p, &enrollment("aa", "ak1", TpmStatus::Verified, 1)).expect("out"),
        feed(&mut p, &enrollment("cc", "ak9", TpmStatus::Verified, 2)).expect("out"),
    ];
    assert_eq!(log[1].1.status, TpmStatus::EkChangedAwaitingApproval);

    let mut restarted = TpmProcessor::new(ids());
    for (i, (record, _)) in log.iter().enumerate() {
        restarted.restore(&ConsumedRecord {
            topic: TPM_REGISTRATIONS.into(),
            partition: 0,
            offset: i as i64,
            record: record.clone(),
        });
    }
    // The same pending EK again: still waiting, nothing new.
    assert!(
        feed(
            &mut restarted,
            &enrollment("cc", "ak9", TpmStatus::Verified, 3)
        )
        .is_none()
    );
    let (_, back) = feed(
        &mut restarted,
        &enrollment("aa", "ak1", TpmStatus::Verified, 4),
    )
    .expect("out");
    assert_eq!(back.status, TpmStatus::Verified);
    assert_eq!(back.ek_fingerprint, "aa".repeat(32));
}

#[test]
fn a_first_rejection_is_recorded_and_a_later_proof_verifies() {
    let mut p = TpmProcessor::new(ids());
    let (_, rej) = feed(&mut p, &enrollment("aa", "ak1", TpmStatus::Rejected, 1)).expect("out");
    assert_eq!(rej.status, TpmStatus::Rejected);
    assert!(feed(&mut p, &enrollment("aa", "ak1", TpmStatus::Rejected, 2)).is_none());
    let (_, ok) = feed(&mut p, &enrollment("aa", "ak1", TpmStatus::Verified, 3)).expect("out");
    assert_eq!(ok.status, TpmStatus::Verified);
}
