//! Key management: derivation known answers, both keyring backends, and the `keys` CLI.

use std::io::Cursor;
use std::path::Path;
use std::sync::Arc;

use clap::Parser;
use hpc_client::keys::address::{decode_bech32, encode_bech32};
use hpc_client::keys::cli::{run, KeysArgs, KeysCommand, KeysContext, OutputFormat};
use hpc_client::keys::{
    address_from_mnemonic, derive_from_phrase, parse_address, AddOptions, Backend, DerivedKey,
    FixedPassphrase, HdPath, Keyring, KeysError, Mnemonic, PassphraseProvider, PassphrasePurpose,
    ScryptParams,
};
use zeroize::Zeroizing;

const ABANDON: &str =
    "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about";
/// `gaiad keys add --recover` of ABANDON at m/44'/118'/0'/0/0.
const ABANDON_COSMOS_ADDRESS: &str = "cosmos19rl4cm2hmr8afy4kldpxz3fka4jguq0auqdal4";
/// Cheap scrypt for tests that do not test the cost itself.
const FAST_KDF: ScryptParams = ScryptParams {
    log_n: 8,
    r: 8,
    p: 1,
};
const PASSPHRASE: &str = "correct horse battery";

fn file_keyring(home: &Path, passphrase: &str) -> Keyring {
    Keyring::file(home, FixedPassphrase::shared(passphrase)).with_kdf_params(FAST_KDF)
}

fn ctx(home: &Path, backend: Backend, output: OutputFormat) -> KeysContext {
    let mut ctx = KeysContext::new(home, backend, output)
        .with_passphrase(FixedPassphrase::shared(PASSPHRASE));
    ctx.kdf = Some(FAST_KDF);
    ctx.prompts = false;
    ctx
}

/// Runs `keys <args>` (parsed as the CLI would) with `stdin`; returns stdout or the error.
fn run_cli(ctx: &KeysContext, args: &[&str], stdin: &str) -> Result<String, KeysError> {
    let parsed = KeysArgs::try_parse_from(std::iter::once("keys").chain(args.iter().copied()))
        .unwrap_or_else(|e| panic!("keys {args:?} does not parse: {e}"));
    let mut ctx = ctx.clone();
    if args.iter().any(|a| *a == "-o" || *a == "--output") {
        ctx.output = parsed.common.output;
    }
    let mut out = Vec::new();
    run(
        parsed.command,
        &ctx,
        &mut out,
        &mut Cursor::new(stdin.as_bytes().to_vec()),
    )?;
    Ok(String::from_utf8(out).unwrap())
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

// ---------------------------------------------------------------- derivation

#[test]
fn known_answer_abandon_mnemonic_matches_cosmos_address_bytes() {
    let (hrp, cosmos_bytes) = decode_bech32(ABANDON_COSMOS_ADDRESS).unwrap();
    assert_eq!(hrp, "cosmos");
    assert_eq!(cosmos_bytes.len(), 20);

    let key = derive_from_phrase(ABANDON, "", HdPath::default()).unwrap();
    assert_eq!(key.address().as_bytes(), cosmos_bytes.as_slice());
    assert_eq!(key.hd_path().unwrap().to_string(), "m/44'/118'/0'/0/0");
    // The compressed public key hashes to the address.
    assert_eq!(key.public_key().len(), 33);
    assert!(matches!(key.public_key()[0], 2 | 3));
    assert_eq!(
        hpc_client::keys::address_from_pubkey(&key.public_key()).unwrap(),
        key.address()
    );

    // Same 20 bytes under the chain's prefix, and the one-call helper agrees.
    let virtengine = encode_bech32("virtengine", &cosmos_bytes).unwrap();
    assert_eq!(key.address().to_string(), virtengine);
    assert!(virtengine.starts_with("virtengine1"));
    assert_eq!(
        address_from_mnemonic(ABANDON, "", HdPath::default())
            .unwrap()
            .to_string(),
        virtengine
    );
    assert_eq!(parse_address(&virtengine).unwrap(), key.address());
    // And the cosmos form of our bytes is the reference address.
    assert_eq!(
        encode_bech32("cosmos", key.address().as_bytes()).unwrap(),
        ABANDON_COSMOS_ADDRESS
    );
}

#[test]
fn account_index_and_bip39_passphrase_change_the_key() {
    let base = address_from_mnemonic(ABANDON, "", HdPath::default()).unwrap();
    let index1 = address_from_mnemonic(ABANDON, "", HdPath::new(0, 1).unwrap()).unwrap();
    let account1 = address_from_mnemonic(ABANDON, "", HdPath::new(1, 0).unwrap()).unwrap();
    let with_pass = address_from_mnemonic(ABANDON, "TREZOR", HdPath::default()).unwrap();
    let all = [base, index1, account1, with_pass];
    for (i, a) in all.iter().enumerate() {
        for b in &all[i + 1..] {
            assert_ne!(a, b);
        }
    }
    // Deterministic.
    assert_eq!(
        address_from_mnemonic(ABANDON, "TREZOR", HdPath::default()).unwrap(),
        with_pass
    );
}

#[test]
fn generated_mnemonic_round_trips_to_the_same_key() {
    let m = Mnemonic::generate().unwrap();
    assert_eq!(m.word_count(), 24);
    let phrase = m.phrase();
    let words: Vec<&str> = phrase.split(' ').collect();
    assert_eq!(words.len(), 24);
    let a = hpc_client::keys::derive_key(&m, "", HdPath::default()).unwrap();
    let b = derive_from_phrase(&phrase, "", HdPath::default()).unwrap();
    assert_eq!(a.address(), b.address());
    assert_eq!(*a.private_key_hex(), *b.private_key_hex());
}

#[test]
fn invalid_mnemonics_name_the_problem() {
    // Every word valid, last word wrong: checksum.
    let bad_checksum = ABANDON.replace("about", "abandon");
    let err = Mnemonic::parse(&bad_checksum).unwrap_err();
    assert!(matches!(err, KeysError::InvalidMnemonic { .. }), "{err:?}");
    assert!(err.to_string().contains("checksum mismatch"), "{err}");

    // Swapping one word of a valid 24-word mnemonic for another valid word.
    let m = Mnemonic::generate().unwrap();
    let phrase = m.phrase();
    let mut words: Vec<&str> = phrase.split(' ').collect();
    let mut rejected = false;
    for candidate in ["zoo", "zone", "abandon", "ability"] {
        if words[23] != candidate {
            words[23] = candidate;
            if let Err(e) = Mnemonic::parse(&words.join(" ")) {
                assert!(e.to_string().contains("checksum"), "{e}");
                rejected = true;
                break;
            }
        }
    }
    assert!(rejected, "no last-word replacement was rejected");

    let err = Mnemonic::parse(&ABANDON.replacen(
        "abandon abandon abandon",
        "abandon abandon abandonn",
        1,
    ))
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("word 3 of 12 is not in the BIP39 English word list"),
        "{err}"
    );
    assert!(err.contains("did you mean \"abandon\""), "{err}");
    assert!(
        !err.contains("abandonn"),
        "the error must not echo the words: {err}"
    );

    let err = Mnemonic::parse("abandon abandon about")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("3 words") && err.contains("12, 15, 18, 21 or 24"),
        "{err}"
    );
    assert!(Mnemonic::parse("   ")
        .unwrap_err()
        .to_string()
        .contains("empty"));

    // The keyring refuses them too, and writes nothing.
    let home = tempfile::tempdir().unwrap();
    let kr = Keyring::test(home.path());
    let err = kr
        .recover("bad", &bad_checksum, &AddOptions::default())
        .unwrap_err();
    assert!(matches!(err, KeysError::InvalidMnemonic { .. }));
    assert!(kr.list().unwrap().is_empty());
}

// ---------------------------------------------------------------- keyring, test backend

#[test]
fn test_backend_add_list_show_export_delete() {
    let home = tempfile::tempdir().unwrap();
    let kr = Keyring::test(home.path());
    assert!(kr.list().unwrap().is_empty());

    let (bob, mnemonic) = kr.add("bob", &AddOptions::default()).unwrap();
    assert_eq!(mnemonic.word_count(), 24);
    let alice = kr
        .recover("alice", ABANDON, &AddOptions::default())
        .unwrap();
    let (_, cosmos_bytes) = decode_bech32(ABANDON_COSMOS_ADDRESS).unwrap();
    assert_eq!(
        alice.account_address().unwrap().as_bytes(),
        cosmos_bytes.as_slice()
    );
    assert_eq!(alice.key_type, "local");
    assert_eq!(alice.origin, "mnemonic");
    assert_eq!(alice.hd_path.as_deref(), Some("m/44'/118'/0'/0/0"));
    assert_eq!(bob.origin, "generated");

    // The generated mnemonic recovers bob's key.
    assert_eq!(
        derive_from_phrase(&mnemonic.phrase(), "", HdPath::default())
            .unwrap()
            .address()
            .to_string(),
        bob.address
    );

    // list is sorted by name.
    let names: Vec<String> = kr.list().unwrap().into_iter().map(|k| k.name).collect();
    assert_eq!(names, ["alice", "bob"]);

    // show by name and by address.
    assert_eq!(kr.show("alice").unwrap(), alice);
    assert_eq!(kr.show(&alice.address).unwrap(), alice);
    assert_eq!(kr.address("bob").unwrap().to_string(), bob.address);
    let err = kr.show("carol").unwrap_err();
    assert!(
        matches!(err, KeysError::KeyNotFound { ref name, .. } if name == "carol"),
        "{err:?}"
    );
    let unknown_addr = encode_bech32("virtengine", &[1u8; 20]).unwrap();
    assert!(matches!(
        kr.show(&unknown_addr).unwrap_err(),
        KeysError::KeyNotFound { .. }
    ));
    let mut typo = alice.address.clone();
    typo.pop();
    typo.push(if alice.address.ends_with('q') {
        'p'
    } else {
        'q'
    });
    let err = kr.show(&typo).unwrap_err().to_string();
    assert!(err.contains("checksum mismatch"), "{err}");

    // The file is plain JSON with the key in hex and the warning.
    let path = home.path().join("keyring-test").join("alice.json");
    let file = json(&std::fs::read_to_string(&path).unwrap());
    let exported = kr.export_private_key_hex("alice").unwrap();
    assert_eq!(file["private_key"].as_str().unwrap(), exported.as_str());
    assert!(file["warning"].as_str().unwrap().contains("INSECURE"));
    assert_eq!(file["address"].as_str().unwrap(), alice.address);
    assert_eq!(file["pubkey"].as_str().unwrap(), alice.pubkey);
    assert_eq!(file["type"], "local");
    assert_eq!(exported.len(), 64);
    let expected = derive_from_phrase(ABANDON, "", HdPath::default()).unwrap();
    assert_eq!(exported.as_str(), expected.private_key_hex().as_str());

    // signing_key gives the stored key.
    let sk = kr.signing_key("alice").unwrap();
    assert_eq!(
        sk.public_key().to_bytes(),
        alice.pubkey_bytes().unwrap().to_vec()
    );
    assert_eq!(kr.key("alice").unwrap().hd_path(), Some(HdPath::default()));

    // delete.
    let deleted = kr.delete("alice").unwrap();
    assert_eq!(deleted.address, alice.address);
    assert!(!path.exists());
    assert!(matches!(
        kr.delete("alice").unwrap_err(),
        KeysError::KeyNotFound { .. }
    ));
    assert_eq!(kr.list().unwrap().len(), 1);
}

#[test]
fn import_private_key_round_trips_export() {
    let home = tempfile::tempdir().unwrap();
    let kr = Keyring::test(home.path());
    let alice = kr
        .recover("alice", ABANDON, &AddOptions::default())
        .unwrap();
    let hex_key = kr.export_private_key_hex("alice").unwrap();
    let file_kr = file_keyring(home.path(), PASSPHRASE);
    let imported = file_kr
        .import_private_key_hex("alice2", &hex_key, false)
        .unwrap();
    assert_eq!(imported.address, alice.address);
    assert_eq!(imported.origin, "private_key");
    assert_eq!(imported.hd_path, None);
    assert_eq!(*file_kr.export_private_key_hex("alice2").unwrap(), *hex_key);
    let err = file_kr
        .import_private_key_hex("bad", "zz", false)
        .unwrap_err();
    assert!(
        matches!(err, KeysError::InvalidPrivateKey { .. }),
        "{err:?}"
    );
}

#[test]
fn duplicate_and_invalid_names() {
    let home = tempfile::tempdir().unwrap();
    let kr = Keyring::test(home.path());
    let (first, _) = kr.add("val-1", &AddOptions::default()).unwrap();

    let err = kr.add("val-1", &AddOptions::default()).unwrap_err();
    assert!(
        matches!(err, KeysError::KeyExists { ref name, .. } if name == "val-1"),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("\"val-1\" already exists"),
        "{err}"
    );
    let err = kr
        .recover("val-1", ABANDON, &AddOptions::default())
        .unwrap_err();
    assert!(matches!(err, KeysError::KeyExists { .. }));
    assert_eq!(
        kr.show("val-1").unwrap().address,
        first.address,
        "the existing key is untouched"
    );

    // With overwrite, the key is replaced.
    let opts = AddOptions {
        overwrite: true,
        ..Default::default()
    };
    let replaced = kr.recover("val-1", ABANDON, &opts).unwrap();
    assert_ne!(replaced.address, first.address);
    assert_eq!(kr.show("val-1").unwrap().address, replaced.address);
    assert_eq!(kr.list().unwrap().len(), 1);

    for bad in ["", "has space", "../escape", "a/b", &"n".repeat(65), "ключ"] {
        let err = kr.add(bad, &AddOptions::default()).unwrap_err();
        assert!(
            matches!(err, KeysError::InvalidName { .. }),
            "{bad:?}: {err:?}"
        );
        assert!(err.to_string().contains("A-Z, a-z, 0-9"), "{err}");
    }
    assert_eq!(kr.list().unwrap().len(), 1);
    assert!(!home.path().join("escape.json").exists());
}

// ---------------------------------------------------------------- keyring, file backend

#[test]
fn file_backend_encrypts_and_round_trips() {
    let home = tempfile::tempdir().unwrap();
    let kr = file_keyring(home.path(), PASSPHRASE);
    let alice = kr
        .recover("alice", ABANDON, &AddOptions::default())
        .unwrap();
    let (bob, _) = kr.add("bob", &AddOptions::default()).unwrap();

    let path = home.path().join("keyring-file").join("alice.key");
    let text = std::fs::read_to_string(&path).unwrap();
    let expected = derive_from_phrase(ABANDON, "", HdPath::default()).unwrap();
    assert!(
        !text.contains(expected.private_key_hex().as_str()),
        "private key must not be in clear"
    );
    let file = json(&text);
    assert_eq!(file["name"], "alice");
    assert_eq!(file["type"], "local");
    assert_eq!(file["address"].as_str().unwrap(), alice.address);
    assert_eq!(file["pubkey"].as_str().unwrap(), expected.public_key_hex());
    assert_eq!(file["crypto"]["kdf"], "scrypt");
    assert_eq!(file["crypto"]["cipher"], "xchacha20-poly1305");
    assert_eq!(file["crypto"]["kdfparams"]["log_n"], FAST_KDF.log_n);
    assert_eq!(file["crypto"]["kdfparams"]["r"], 8);
    assert_eq!(
        file["crypto"]["kdfparams"]["salt"].as_str().unwrap().len(),
        64
    );
    assert_eq!(file["crypto"]["nonce"].as_str().unwrap().len(), 48);
    // Salts are random per file.
    let bob_file =
        json(&std::fs::read_to_string(home.path().join("keyring-file/bob.key")).unwrap());
    assert_ne!(
        bob_file["crypto"]["kdfparams"]["salt"],
        file["crypto"]["kdfparams"]["salt"]
    );

    // list/show need no passphrase.
    let locked = Keyring::file(home.path(), Arc::new(hpc_client::keys::NoPassphrase));
    let names: Vec<String> = locked.list().unwrap().into_iter().map(|k| k.name).collect();
    assert_eq!(names, ["alice", "bob"]);
    assert_eq!(locked.show(&bob.address).unwrap().name, "bob");

    // Decrypts with the right passphrase.
    assert_eq!(
        kr.export_private_key_hex("alice").unwrap().as_str(),
        expected.private_key_hex().as_str()
    );
    assert_eq!(
        kr.signing_key("alice").unwrap().public_key().to_bytes(),
        expected.public_key().to_vec()
    );

    // The test backend of the same home is a separate keyring.
    assert!(Keyring::test(home.path()).list().unwrap().is_empty());

    kr.delete("alice").unwrap();
    assert!(!path.exists());
    assert_eq!(kr.list().unwrap().len(), 1);
}

#[test]
fn file_backend_wrong_passphrase() {
    let home = tempfile::tempdir().unwrap();
    file_keyring(home.path(), PASSPHRASE)
        .recover("alice", ABANDON, &AddOptions::default())
        .unwrap();
    let wrong = file_keyring(home.path(), "not the passphrase");
    let err = wrong.export_private_key_hex("alice").unwrap_err();
    assert!(
        matches!(err, KeysError::WrongPassphrase { ref name } if name == "alice"),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("wrong passphrase for key \"alice\""),
        "{err}"
    );
    assert!(matches!(
        wrong.signing_key("alice").err(),
        Some(KeysError::WrongPassphrase { .. })
    ));
}

#[test]
fn file_backend_detects_tampering_and_short_passphrase() {
    let home = tempfile::tempdir().unwrap();
    let kr = file_keyring(home.path(), PASSPHRASE);
    kr.recover("alice", ABANDON, &AddOptions::default())
        .unwrap();
    // Swap in another address: the authenticated data no longer matches.
    let path = home.path().join("keyring-file/alice.key");
    let mut file = json(&std::fs::read_to_string(&path).unwrap());
    file["address"] = encode_bech32("virtengine", &[3u8; 20]).unwrap().into();
    std::fs::write(&path, serde_json::to_vec(&file).unwrap()).unwrap();
    assert!(kr.export_private_key_hex("alice").is_err());

    let short = file_keyring(home.path(), "short");
    let err = short.add("bob", &AddOptions::default()).unwrap_err();
    assert!(matches!(err, KeysError::Passphrase { .. }), "{err:?}");
    assert!(err.to_string().contains("at least 8 characters"), "{err}");
    assert!(!home.path().join("keyring-file/bob.key").exists());
}

#[test]
fn file_backend_default_kdf_cost_and_provider_purposes() {
    let home = tempfile::tempdir().unwrap();
    let asked = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = asked.clone();
    let provider = move |name: &str, purpose: PassphrasePurpose| {
        log.lock().unwrap().push((name.to_string(), purpose));
        Ok(Zeroizing::new(PASSPHRASE.to_string()))
    };
    let provider: Arc<dyn PassphraseProvider> = Arc::new(provider);
    let kr = Keyring::file(home.path(), provider); // default scrypt cost
    kr.recover("alice", ABANDON, &AddOptions::default())
        .unwrap();
    let file = json(&std::fs::read_to_string(home.path().join("keyring-file/alice.key")).unwrap());
    assert_eq!(
        file["crypto"]["kdfparams"]["log_n"],
        ScryptParams::default().log_n
    );
    assert_eq!(
        kr.key("alice").unwrap().address().to_string(),
        file["address"].as_str().unwrap()
    );
    assert_eq!(
        *asked.lock().unwrap(),
        [
            ("alice".to_string(), PassphrasePurpose::Create),
            ("alice".to_string(), PassphrasePurpose::Unlock)
        ]
    );
}

#[cfg(unix)]
#[test]
fn key_files_are_0600_and_directories_0700() {
    let home = tempfile::tempdir().unwrap();
    let test_kr = Keyring::test(home.path());
    test_kr.add("a", &AddOptions::default()).unwrap();
    let file_kr = file_keyring(home.path(), PASSPHRASE);
    file_kr.add("b", &AddOptions::default()).unwrap();
    assert_eq!(mode(&home.path().join("keyring-test")), 0o700);
    assert_eq!(mode(&home.path().join("keyring-file")), 0o700);
    assert_eq!(mode(&home.path().join("keyring-test/a.json")), 0o600);
    assert_eq!(mode(&home.path().join("keyring-file/b.key")), 0o600);
    // Overwriting keeps the mode, and no temporary files are left behind.
    let opts = AddOptions {
        overwrite: true,
        ..Default::default()
    };
    test_kr.recover("a", ABANDON, &opts).unwrap();
    assert_eq!(mode(&home.path().join("keyring-test/a.json")), 0o600);
    let entries: Vec<String> = std::fs::read_dir(home.path().join("keyring-test"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(entries, ["a.json"]);
}

// ---------------------------------------------------------------- CLI

#[test]
fn cli_add_json_output_parses_back() {
    let home = tempfile::tempdir().unwrap();
    for backend in [Backend::Test, Backend::File] {
        let ctx = ctx(home.path(), backend, OutputFormat::Text);
        let out = run_cli(&ctx, &["add", "alice", "--output", "json"], "").unwrap();
        let v = json(&out);
        assert_eq!(v["name"], "alice");
        assert_eq!(v["type"], "local");
        let mnemonic = v["mnemonic"].as_str().unwrap();
        assert_eq!(mnemonic.split(' ').count(), 24);
        let address = v["address"].as_str().unwrap();
        assert_eq!(
            derive_from_phrase(mnemonic, "", HdPath::default())
                .unwrap()
                .address()
                .to_string(),
            address
        );
        assert_eq!(v["pubkey"].as_str().unwrap().len(), 66);
        assert_eq!(ctx.keyring().show("alice").unwrap().address, address);

        // --no-backup leaves the mnemonic out.
        let v = json(&run_cli(&ctx, &["add", "bob", "--no-backup", "-o", "json"], "").unwrap());
        assert!(v.get("mnemonic").is_none(), "{v}");

        // list --output json is an array sorted by name.
        let list = json(&run_cli(&ctx, &["list", "--output", "json"], "").unwrap());
        let names: Vec<&str> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["alice", "bob"]);

        // show -a prints the bare address; show by address gives the name back.
        assert_eq!(
            run_cli(&ctx, &["show", "alice", "-a"], "").unwrap().trim(),
            address
        );
        let shown = json(&run_cli(&ctx, &["show", address, "-o", "json"], "").unwrap());
        assert_eq!(shown["name"], "alice");
    }
}

#[test]
fn cli_add_text_output_shows_the_backup_warning() {
    let home = tempfile::tempdir().unwrap();
    let ctx = ctx(home.path(), Backend::Test, OutputFormat::Text);
    let out = run_cli(&ctx, &["add", "alice"], "").unwrap();
    assert!(out.contains("- name: alice"), "{out}");
    assert!(out.contains("address: virtengine1"), "{out}");
    assert!(out.contains("pubkey: 0"), "{out}");
    assert!(
        out.contains("write this mnemonic phrase in a safe place"),
        "{out}"
    );
    let info = ctx.keyring().show("alice").unwrap();
    let mnemonic_line = out
        .lines()
        .find(|l| l.split(' ').count() == 24)
        .expect("the mnemonic is printed");
    assert_eq!(
        derive_from_phrase(mnemonic_line, "", HdPath::default())
            .unwrap()
            .address()
            .to_string(),
        info.address
    );
    assert!(out.contains("UNENCRYPTED"), "test backend warns: {out}");

    let out = run_cli(&ctx, &["add", "bob", "--no-backup"], "").unwrap();
    assert!(!out.contains("safe place"), "{out}");
}

#[test]
fn cli_recover_from_stdin_and_hd_overrides() {
    let home = tempfile::tempdir().unwrap();
    let ctx = ctx(home.path(), Backend::File, OutputFormat::Json);
    let v = json(
        &run_cli(
            &ctx,
            &["add", "alice", "--recover"],
            &format!("{ABANDON}\n"),
        )
        .unwrap(),
    );
    let (_, cosmos_bytes) = decode_bech32(ABANDON_COSMOS_ADDRESS).unwrap();
    assert_eq!(
        v["address"].as_str().unwrap(),
        encode_bech32("virtengine", &cosmos_bytes).unwrap()
    );
    assert!(
        v.get("mnemonic").is_none(),
        "a recovered mnemonic is not echoed: {v}"
    );

    let v = json(
        &run_cli(
            &ctx,
            &[
                "add",
                "alice-2-5",
                "--recover",
                "--account",
                "2",
                "--index",
                "5",
            ],
            &format!("{ABANDON}\n"),
        )
        .unwrap(),
    );
    assert_eq!(v["hd_path"], "m/44'/118'/2'/0/5");
    assert_eq!(
        v["address"].as_str().unwrap(),
        address_from_mnemonic(ABANDON, "", HdPath::new(2, 5).unwrap())
            .unwrap()
            .to_string()
    );

    let v = json(
        &run_cli(
            &ctx,
            &["add", "alice-pass", "--recover", "--bip39-passphrase"],
            &format!("{ABANDON}\nTREZOR\n"),
        )
        .unwrap(),
    );
    assert_eq!(
        v["address"].as_str().unwrap(),
        address_from_mnemonic(ABANDON, "TREZOR", HdPath::default())
            .unwrap()
            .to_string()
    );

    // No mnemonic on stdin: the error names --recover.
    let err = run_cli(&ctx, &["add", "x", "--recover"], "").unwrap_err();
    assert!(err.to_string().contains("--recover"), "{err}");
    // A bad checksum is reported as such and nothing is stored.
    let err = run_cli(
        &ctx,
        &["add", "x", "--recover"],
        &ABANDON.replace("about", "zoo"),
    )
    .unwrap_err();
    assert!(err.to_string().contains("checksum"), "{err}");
    // Duplicate name.
    let err = run_cli(&ctx, &["add", "alice", "--recover"], ABANDON).unwrap_err();
    assert!(matches!(err, KeysError::KeyExists { .. }), "{err:?}");
    assert_eq!(ctx.keyring().list().unwrap().len(), 3);
}

#[test]
fn cli_export_requires_unsafe_and_confirmation() {
    let home = tempfile::tempdir().unwrap();
    let ctx = ctx(home.path(), Backend::Test, OutputFormat::Text);
    run_cli(&ctx, &["add", "alice", "--recover"], ABANDON).unwrap();
    let expected = derive_from_phrase(ABANDON, "", HdPath::default())
        .unwrap()
        .private_key_hex();

    let err = run_cli(&ctx, &["export", "alice"], "").unwrap_err();
    assert!(
        matches!(err, KeysError::InvalidArgument { ref flag, .. } if flag == "--unsafe"),
        "{err:?}"
    );
    assert!(err.to_string().contains("plain text"), "{err}");

    let err = run_cli(&ctx, &["export", "alice", "--unsafe"], "").unwrap_err();
    assert!(matches!(err, KeysError::Aborted { .. }), "{err:?}");
    assert!(err.to_string().contains("--yes"), "{err}");
    let err = run_cli(&ctx, &["export", "alice", "--unsafe"], "n\n").unwrap_err();
    assert!(matches!(err, KeysError::Aborted { .. }), "{err:?}");

    assert_eq!(
        run_cli(&ctx, &["export", "alice", "--unsafe"], "y\n")
            .unwrap()
            .trim(),
        expected.as_str()
    );
    assert_eq!(
        run_cli(&ctx, &["export", "alice", "--unsafe", "--yes"], "")
            .unwrap()
            .trim(),
        expected.as_str()
    );
    let v = json(
        &run_cli(
            &ctx,
            &["export", "alice", "--unsafe", "--yes", "-o", "json"],
            "",
        )
        .unwrap(),
    );
    assert_eq!(v["private_key"].as_str().unwrap(), expected.as_str());
    assert_eq!(v["name"], "alice");

    // The export imports back (file holding the hex key).
    let key_file = home.path().join("alice.hex");
    std::fs::write(&key_file, format!("{}\n", expected.as_str())).unwrap();
    let v = json(
        &run_cli(
            &ctx,
            &[
                "import",
                "alice2",
                key_file.to_str().unwrap(),
                "--private-key",
                "-o",
                "json",
            ],
            "",
        )
        .unwrap(),
    );
    assert_eq!(
        v["address"],
        json(&run_cli(&ctx, &["show", "alice", "-o", "json"], "").unwrap())["address"]
    );
}

#[test]
fn cli_delete_asks_unless_yes() {
    let home = tempfile::tempdir().unwrap();
    let ctx = ctx(home.path(), Backend::Test, OutputFormat::Text);
    run_cli(&ctx, &["add", "alice"], "").unwrap();
    run_cli(&ctx, &["add", "bob"], "").unwrap();

    let err = run_cli(&ctx, &["delete", "alice"], "").unwrap_err();
    assert!(err.to_string().contains("--yes"), "{err}");
    let err = run_cli(&ctx, &["delete", "alice"], "no\n").unwrap_err();
    assert!(matches!(err, KeysError::Aborted { .. }));
    assert!(ctx.keyring().contains("alice").unwrap());

    let out = run_cli(&ctx, &["delete", "alice"], "y\n").unwrap();
    assert!(
        out.contains("\"alice\"") && out.contains("deleted"),
        "{out}"
    );
    assert!(!ctx.keyring().contains("alice").unwrap());

    let v = json(&run_cli(&ctx, &["delete", "bob", "--yes", "-o", "json"], "").unwrap());
    assert_eq!(v["deleted"], true);
    assert_eq!(v["name"], "bob");
    assert!(ctx.keyring().list().unwrap().is_empty());
    let text = run_cli(&ctx, &["list"], "").unwrap();
    assert!(text.contains("No keys"), "{text}");

    let err = run_cli(&ctx, &["delete", "nobody", "--yes"], "").unwrap_err();
    assert!(matches!(err, KeysError::KeyNotFound { .. }), "{err:?}");
}

#[test]
fn cli_import_mnemonic_file() {
    let home = tempfile::tempdir().unwrap();
    let ctx = ctx(home.path(), Backend::File, OutputFormat::Json);
    let file = home.path().join("mnemonic.txt");
    std::fs::write(&file, format!("\n  {ABANDON}  \n")).unwrap();
    let v = json(&run_cli(&ctx, &["import", "alice", file.to_str().unwrap()], "").unwrap());
    assert_eq!(
        v["address"].as_str().unwrap(),
        address_from_mnemonic(ABANDON, "", HdPath::default())
            .unwrap()
            .to_string()
    );
    assert_eq!(v["origin"], "mnemonic");

    let missing = home.path().join("missing.txt");
    let err = run_cli(&ctx, &["import", "bob", missing.to_str().unwrap()], "").unwrap_err();
    assert!(err.to_string().contains("missing.txt"), "{err}");

    let err = run_cli(&ctx, &["import", "bad name", file.to_str().unwrap()], "").unwrap_err();
    assert!(matches!(err, KeysError::InvalidName { .. }), "{err:?}");
}

#[test]
fn cli_flags_parse_with_defaults_and_errors() {
    let args = KeysArgs::try_parse_from(["keys", "list"]).unwrap();
    assert_eq!(args.common.output, OutputFormat::Text);
    assert_eq!(args.command, KeysCommand::List);
    if std::env::var_os("HPCD_KEYRING_BACKEND").is_none() {
        assert_eq!(args.common.keyring_backend, Backend::File);
    }
    let args = KeysArgs::try_parse_from([
        "keys",
        "show",
        "x",
        "--keyring-backend",
        "test",
        "--home",
        "/tmp/h",
    ])
    .unwrap();
    assert_eq!(args.common.keyring_backend, Backend::Test);
    assert_eq!(args.common.home.as_deref(), Some(Path::new("/tmp/h")));
    let ctx = args.common.context();
    assert_eq!(ctx.keyring().dir(), Path::new("/tmp/h/keyring-test"));

    let err = KeysArgs::try_parse_from(["keys", "list", "--keyring-backend", "os"])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("--keyring-backend") && err.contains("file") && err.contains("test"),
        "{err}"
    );
    let err = KeysArgs::try_parse_from(["keys", "add", "a", "--account", "x1"])
        .unwrap_err()
        .to_string();
    assert!(err.contains("--account"), "{err}");
    let err = run_cli(&ctx, &["add", "a", "--account", "2147483648"], "")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("--account/--index") && err.contains("2^31"),
        "{err}"
    );
    assert!("os"
        .parse::<Backend>()
        .unwrap_err()
        .to_string()
        .contains("--keyring-backend"));
}

#[test]
fn derived_key_debug_hides_the_secret() {
    let k: DerivedKey = derive_from_phrase(ABANDON, "", HdPath::default()).unwrap();
    let dbg = format!("{k:?}");
    assert!(dbg.contains(&k.address().to_string()));
    assert!(!dbg.contains(k.private_key_hex().as_str()));
}
