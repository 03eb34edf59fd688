//! Bad input ends in a named error, never a panic; plus fuzzing over every parser.

mod common;

use automata_fwcatalog::CatalogError;
use automata_fwcatalog::{dell, generic, hpe, lenovo, lvfs, supermicro};
use common::*;
use proptest::prelude::*;

fn utf16le(s: &str, bom: &[u8]) -> Vec<u8> {
    let mut v = bom.to_vec();
    for u in s.encode_utf16() {
        v.extend_from_slice(&u.to_le_bytes());
    }
    v
}

fn utf16be(s: &str, bom: &[u8]) -> Vec<u8> {
    let mut v = bom.to_vec();
    for u in s.encode_utf16() {
        v.extend_from_slice(&u.to_be_bytes());
    }
    v
}

const SMALL: &str = r#"<?xml version="1.0" encoding="utf-16"?><Manifest baseLocation="downloads.dell.com"><SoftwareComponent releaseID="A" vendorVersion="1.0" path="F/a.exe"/></Manifest>"#;

#[test]
fn utf16_with_a_wrong_bom() {
    // BOM says little endian, content is big endian.
    let err = dell::parse("dell", &utf16be(SMALL, &[0xff, 0xfe])).expect_err("wrong bom");
    assert!(matches!(err, CatalogError::Encoding(_)), "{err}");
    // BOM says UTF-16 LE, content is UTF-8.
    let mut v = vec![0xff, 0xfe];
    v.extend_from_slice(SMALL.as_bytes());
    assert!(matches!(
        dell::parse("dell", &v),
        Err(CatalogError::Encoding(_))
    ));
    // A BOM-less document that starts with neither '<' nor a BOM.
    assert!(matches!(
        dell::parse("dell", b"\x01\x02garbage"),
        Err(CatalogError::Encoding(_))
    ));
    // An unpaired surrogate inside UTF-16.
    let mut bad = utf16le(SMALL, &[0xff, 0xfe]);
    let at = bad.len() - 20;
    bad[at] = 0x00;
    bad[at + 1] = 0xd8;
    assert!(matches!(
        dell::parse("dell", &bad),
        Err(CatalogError::Encoding(_))
    ));
    // A UTF-8 BOM is fine.
    let mut bom8 = vec![0xef, 0xbb, 0xbf];
    bom8.extend_from_slice(SMALL.as_bytes());
    assert_eq!(dell::parse("dell", &bom8).expect("utf-8 bom").len(), 1);
    // Correct BOMs in both byte orders are fine.
    assert_eq!(
        dell::parse("dell", &utf16le(SMALL, &[0xff, 0xfe]))
            .expect("le")
            .len(),
        1
    );
    assert_eq!(
        dell::parse("dell", &utf16be(SMALL, &[0xfe, 0xff]))
            .expect("be")
            .len(),
        1
    );
}

#[test]
fn truncated_xml() {
    let full = utf16le(SMALL, &[0xff, 0xfe]);
    let cut = &full[..full.len() - 24];
    let err = dell::parse("dell", cut).expect_err("truncated");
    assert!(
        matches!(err, CatalogError::Truncated(_) | CatalogError::Xml { .. }),
        "{err}"
    );
    let gz = read("Catalog.xml.gz");
    let err = dell::parse("dell", &gz[..gz.len() / 2]).expect_err("truncated gzip");
    assert!(
        matches!(
            err,
            CatalogError::Truncated(_) | CatalogError::Decompress(_) | CatalogError::Xml { .. }
        ),
        "{err}"
    );
    let xml = read("lvfs-metadata.xml");
    assert!(matches!(
        lvfs::parse_metadata("lvfs", None, &xml[..xml.len() - 40]),
        Err(CatalogError::Truncated(_) | CatalogError::Xml { .. })
    ));
}

#[test]
fn xml_entity_bomb_is_rejected_not_expanded() {
    let bomb = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<Manifest><SoftwareComponent releaseID="A" vendorVersion="&lol3;"/></Manifest>"#;
    assert!(matches!(
        dell::parse("dell", bomb.as_bytes()),
        Err(CatalogError::XmlEntityDeclaration)
    ));
    assert!(matches!(
        dell::parse("dell", &utf16le(bomb, &[0xff, 0xfe])),
        Err(CatalogError::XmlEntityDeclaration)
    ));
    let xxe = r#"<?xml version="1.0"?><!DOCTYPE c SYSTEM "file:///etc/passwd"><components/>"#;
    assert!(matches!(
        lvfs::parse_metadata("l", None, xxe.as_bytes()),
        Err(CatalogError::XmlEntityDeclaration)
    ));
    // Without a DTD, an undeclared entity is an error too: quick-xml does not expand it.
    let undeclared = r#"<Manifest><SoftwareComponent releaseID="A"><Name><Display>&lol3;</Display></Name></SoftwareComponent></Manifest>"#;
    assert!(matches!(
        dell::parse("dell", undeclared.as_bytes()),
        Err(CatalogError::Xml { .. })
    ));
}

#[test]
fn gzip_bomb_is_capped() {
    let zeros = vec![b' '; 4 << 20];
    let gz = gzip(&zeros);
    let err = automata_fwcatalog::input::decompress(&gz, 1 << 20).expect_err("cap");
    assert!(matches!(err, CatalogError::TooLarge { .. }), "{err}");
}

#[test]
fn json_with_wrong_types() {
    let e = hpe::parse_fwrepo(
        "hpe",
        "https://x",
        br#"{"a.fwpkg": {"version": 5, "target": []}}"#,
    )
    .expect_err("types");
    assert!(matches!(e, CatalogError::Json { .. }), "{e}");
    let e = hpe::parse_fwrepo(
        "hpe",
        "https://x",
        br#"{"a.fwpkg": {"target": "not-a-list"}}"#,
    )
    .expect_err("types");
    assert!(matches!(e, CatalogError::Json { .. }), "{e}");
    let e =
        hpe::parse_payload_json(br#"{"Devices": {"Device": {"Target": 1}}}"#).expect_err("types");
    assert!(matches!(e, CatalogError::Json { .. }), "{e}");
    let e = generic::parse("g", br#"[{"url": "x", "models": "R750"}]"#).expect_err("types");
    assert!(matches!(e, CatalogError::Json { .. }), "{e}");
    let e = generic::parse("g", b"- url: x\n  sha265: abc\n").expect_err("typo");
    assert!(matches!(e, CatalogError::Json { .. }), "{e}");
    let e = generic::parse("g", b"- url: [unclosed\n").expect_err("yaml");
    assert!(matches!(e, CatalogError::Yaml { .. }), "{e}");
    let e = generic::parse("g", br#"[{"url": "x", "sha256": "nothex"}]"#).expect_err("hash");
    assert!(matches!(e, CatalogError::Invalid { .. }), "{e}");
    let e = generic::parse("g", br#"[{"url": "x", "pci_ids": ["8086"]}]"#).expect_err("pci");
    assert!(matches!(e, CatalogError::Invalid { .. }), "{e}");
    let e = lvfs::parse_jcat(&gzip(br#"{"Items": [{"Id": 5}]}"#)).expect_err("jcat types");
    assert!(matches!(e, CatalogError::Json { .. }), "{e}");
    let e = lenovo::parse_comp_zip(
        "l",
        "lnvgy_fw_x_y-1.0_anyos_comp.zip",
        &zip(&[("index.json", b"{not json")]),
        None,
    )
    .expect_err("json");
    assert!(matches!(e, CatalogError::Json { .. }), "{e}");
}

#[test]
fn wrong_root_elements() {
    assert!(matches!(
        dell::parse("dell", b"<components/>"),
        Err(CatalogError::Invalid { .. })
    ));
    assert!(matches!(
        lvfs::parse_metadata("l", None, b"<Manifest/>"),
        Err(CatalogError::Invalid { .. })
    ));
    assert!(matches!(
        dell::parse("dell", b""),
        Err(CatalogError::Truncated(_))
    ));
}

fn no_panic<T>(r: Result<T, CatalogError>) {
    if let Err(e) = r {
        let _ = (e.kind(), e.to_string());
    }
}

fn seeds() -> Vec<Vec<u8>> {
    vec![
        read("Catalog.xml.gz"),
        read("dell-firmirror-utf16le.xml"),
        read("lvfs-metadata.xml"),
        read("hpe-fwrepo.json"),
        read("hpe-payload.json"),
        read("generic.yaml"),
        read("modeldata.json"),
        read("supermicro-checksum-2.txt"),
        read("lenovo/lnvgy_fw_xcc_cdi3a4e-8.30_anyos_noarch.xml"),
    ]
}

fn run_all(data: &[u8]) {
    no_panic(dell::parse("d", data));
    no_panic(lvfs::parse_metadata("l", Some("https://x"), data));
    no_panic(lvfs::parse_jcat(data));
    no_panic(lvfs::read_cab("l", data));
    no_panic(hpe::parse_fwrepo("h", "https://x", data));
    no_panic(hpe::parse_payload_json(data));
    no_panic(hpe::read_fwpkg(data));
    no_panic(generic::parse("g", data));
    no_panic(supermicro::parse_checksum_txt(data));
    no_panic(lenovo::parse_descriptor(
        "n",
        "lnvgy_fw_a_b-1.0_anyos_noarch.xml",
        data,
        None,
    ));
    no_panic(lenovo::parse_comp_zip(
        "n",
        "lnvgy_fw_a_b-1.0_anyos_comp.zip",
        data,
        None,
    ));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        run_all(&data);
    }

    #[test]
    fn truncated_and_flipped_fixtures_never_panic(which in 0usize..9, cut in any::<prop::sample::Index>(), flip in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let seeds = seeds();
        let mut data = seeds[which].clone();
        let at = flip.index(data.len());
        data[at] = byte;
        run_all(&data);
        let n = cut.index(data.len());
        run_all(&data[..n]);
        // Also as UTF-16 text where it is text.
        if let Ok(s) = std::str::from_utf8(&seeds[which][..n]) {
            run_all(&utf16le(s, &[0xff, 0xfe]));
        }
    }
}
