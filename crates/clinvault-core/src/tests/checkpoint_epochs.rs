//! Checkpoints from before a key rotation: they stand on their signature alone only while the
//! key file says the rotation has not been anchored yet.

use crate::audit_verify::ProblemKind;
use crate::checkpoint::{self, Checkpoint};
use crate::clock::ManualClock;
use crate::keyfile::KeyFile;
use crate::vault_dir::VaultDir;

use super::{new_vault, secret, sign_in};

const PASS: &str = "correct horse battery staple 1";
const JO_PASS: &str = "jo's own long passphrase 2";

fn vault() -> (tempfile::TempDir, VaultDir, ManualClock) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = VaultDir::new(tmp.path().join("v"));
    new_vault(&dir, PASS);
    (tmp, dir, ManualClock::at(1_800_000_000))
}

fn rekey_due(dir: &VaultDir) -> bool {
    KeyFile::read(dir).unwrap().body.checkpoint_rekey_due
}

/// A receptionist who decrypts their own key slot and has the exported database key cuts the
/// trail and signs a checkpoint for the shorter trail, naming the epoch before the last
/// rotation so that its integrity MAC (which they cannot make) would not be checked. The next
/// sign-in must not take it as authentic, and verification must not call the trail intact.
#[test]
fn a_checkpoint_naming_an_earlier_epoch_does_not_vouch_for_a_cut_trail() {
    let (_tmp, dir, clock) = vault();
    let mut a = sign_in(&dir, &clock, "admin", PASS);
    a.add_user("jo", None, "receptionist", &secret(JO_PASS))
        .unwrap();
    assert_eq!(a.rotate_keys().unwrap(), 2);
    assert!(
        !rekey_due(&dir),
        "the rotation re-anchored the checkpoint under the new key"
    );
    for i in 0..4 {
        a.set_policy("idle-lock-minutes", &(20 + i).to_string())
            .unwrap();
    }
    drop(a);

    let jo = sign_in(&dir, &clock, "jo", JO_PASS);
    let vault = jo.vault().unwrap();
    let conn = vault.conn();
    let cut_to: i64 = conn
        .query_row("SELECT max(seq) - 5 FROM audit_log", [], |r| r.get(0))
        .unwrap();
    conn.execute_batch(&format!(
        "DROP TRIGGER audit_log_no_delete; DELETE FROM audit_log WHERE seq > {cut_to};"
    ))
    .unwrap();
    let head: Vec<u8> = conn
        .query_row("SELECT hash FROM audit_log WHERE seq = ?1", [cut_to], |r| {
            r.get(0)
        })
        .unwrap();
    let not_the_integrity_key = crate::crypto::Secret32::random();
    let forged = Checkpoint::sign(
        checkpoint::origin(&vault.vault_id().to_string()),
        cut_to,
        head.try_into().unwrap(),
        &vault.user().id.to_string(),
        vault.user_keys().signing_key(),
        Some((&not_the_integrity_key, 1)),
    )
    .unwrap();
    drop(jo);
    checkpoint::write_file(&dir, &forged).unwrap();
    checkpoint::write_keyring(&forged);

    let mut a = sign_in(&dir, &clock, "admin", PASS);
    let report = a.verify_audit().unwrap();
    assert!(!report.intact, "{report:?}");
    let p = report.problem.unwrap();
    assert_eq!(p.kind, ProblemKind::AnchorReplaced, "{p:?}");
    assert!(p.detail.contains("not authentic"), "{p:?}");
    // The replacement is in the trail, signed, whatever became of the alerts (jo's own
    // session end already raised the mismatch alert this hour).
    let replaced: i64 = a
        .vault()
        .unwrap()
        .conn()
        .query_row(
            "SELECT count(*) FROM audit_log WHERE action = 'audit.checkpoint_replaced'
             AND details LIKE '%not authentic%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(replaced, 1);
}

/// The crash this leniency is for: the rotation promoted the new key, and the checkpoint still
/// carries the old epoch's MAC. While the key file says so, that checkpoint stands (no false
/// alarm at the next sign-in), and once re-anchored it no longer does.
#[test]
fn the_earlier_epoch_stands_only_until_the_checkpoint_is_anchored_under_the_new_key() {
    let (_tmp, dir, clock) = vault();
    let mut a = sign_in(&dir, &clock, "admin", PASS);
    a.set_policy("idle-lock-minutes", "20").unwrap();
    let before_rotation = std::fs::read(dir.file(checkpoint::CHECKPOINT_FILE)).unwrap();
    let cp = checkpoint::read_file(&dir).unwrap().unwrap();
    assert_eq!(cp.mac_epoch, Some(1));
    a.rotate_keys().unwrap();
    let vault = a.vault().unwrap();
    let ik = vault.integrity_key().unwrap();
    let keys = crate::audit_verify::trusted_keys(vault.conn(), &ik).unwrap();
    let lenient = crate::audit_verify::MacEpoch {
        current: 2,
        earlier_stands: true,
    };
    assert!(crate::audit_verify::checkpoint_authentic(
        &keys, &ik, lenient, &cp
    ));
    assert!(!crate::audit_verify::checkpoint_authentic(
        &keys,
        &ik,
        crate::audit_verify::MacEpoch::only(2),
        &cp
    ));
    assert_eq!(vault.mac_epoch(), crate::audit_verify::MacEpoch::only(2));
    drop(a);
    // The old checkpoint put back after the re-anchoring is not authentic any more.
    std::fs::write(dir.file(checkpoint::CHECKPOINT_FILE), before_rotation).unwrap();
    checkpoint::write_keyring(&cp);
    let mut a = sign_in(&dir, &clock, "admin", PASS);
    assert!(a
        .audit_alerts(false)
        .unwrap()
        .iter()
        .any(|x| x.rule == crate::alerts::CHECKPOINT && x.summary.contains("not authentic")));
}
