//! IPMI FRU inventory images (Platform Management FRU Information Storage Definition v1.0 rev
//! 1.3): the common header and the Chassis, Board and Product Info areas, with their
//! type/length-coded strings. Pure and panic-free on any input; problems are collected in
//! [`FruInventory::errors`] rather than failing the whole image.

/// Chassis Info Area (§10).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChassisInfo {
    /// SMBIOS chassis type number.
    pub chassis_type: u8,
    /// Chassis part number.
    pub part_number: Option<String>,
    /// Chassis serial number.
    pub serial: Option<String>,
    /// Custom fields, in order.
    pub custom: Vec<String>,
}

/// Board Info Area (§11).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BoardInfo {
    /// Manufacturing date/time, RFC 3339 UTC (None when unspecified).
    pub mfg_date: Option<String>,
    /// Board manufacturer.
    pub manufacturer: Option<String>,
    /// Board product name.
    pub product: Option<String>,
    /// Board serial number.
    pub serial: Option<String>,
    /// Board part number.
    pub part_number: Option<String>,
    /// FRU file id.
    pub fru_file_id: Option<String>,
    /// Custom fields, in order.
    pub custom: Vec<String>,
}

/// Product Info Area (§12).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProductInfo {
    /// Manufacturer.
    pub manufacturer: Option<String>,
    /// Product name.
    pub name: Option<String>,
    /// Part / model number.
    pub part_number: Option<String>,
    /// Product version.
    pub version: Option<String>,
    /// Product serial number.
    pub serial: Option<String>,
    /// Asset tag.
    pub asset_tag: Option<String>,
    /// FRU file id.
    pub fru_file_id: Option<String>,
    /// Custom fields, in order.
    pub custom: Vec<String>,
}

/// The decoded areas of one FRU image.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FruInventory {
    /// Chassis Info Area, if present and readable.
    pub chassis: Option<ChassisInfo>,
    /// Board Info Area, if present and readable.
    pub board: Option<BoardInfo>,
    /// Product Info Area, if present and readable.
    pub product: Option<ProductInfo>,
    /// What could not be decoded.
    pub errors: Vec<String>,
}

/// Offsets (in bytes) of the areas a FRU common header points to; 0 = absent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommonHeader {
    /// Internal Use Area.
    pub internal: usize,
    /// Chassis Info Area.
    pub chassis: usize,
    /// Board Info Area.
    pub board: usize,
    /// Product Info Area.
    pub product: usize,
    /// MultiRecord Area.
    pub multirecord: usize,
}

/// Parses the 8-byte common header (format version 1, zero checksum).
pub fn parse_header(b: &[u8]) -> Result<CommonHeader, String> {
    let h = b
        .get(..8)
        .ok_or_else(|| format!("FRU common header: {} bytes, need 8", b.len()))?;
    if h[0] & 0x0f != 0x01 {
        return Err(format!("FRU common header: format version {:#04x}", h[0]));
    }
    if sum(h) != 0 {
        return Err("FRU common header: checksum mismatch".into());
    }
    Ok(CommonHeader {
        internal: usize::from(h[1]) * 8,
        chassis: usize::from(h[2]) * 8,
        board: usize::from(h[3]) * 8,
        product: usize::from(h[4]) * 8,
        multirecord: usize::from(h[5]) * 8,
    })
}

fn sum(b: &[u8]) -> u8 {
    b.iter().fold(0u8, |a, x| a.wrapping_add(*x))
}

/// SMBIOS chassis type name (SMBIOS 3.x, table 17), for the chassis component's name.
pub fn chassis_type_name(t: u8) -> Option<&'static str> {
    const NAMES: [&str; 37] = [
        "Unspecified",
        "Other",
        "Unknown",
        "Desktop",
        "Low Profile Desktop",
        "Pizza Box",
        "Mini Tower",
        "Tower",
        "Portable",
        "Laptop",
        "Notebook",
        "Hand Held",
        "Docking Station",
        "All in One",
        "Sub Notebook",
        "Space-saving",
        "Lunch Box",
        "Main Server Chassis",
        "Expansion Chassis",
        "SubChassis",
        "Bus Expansion Chassis",
        "Peripheral Chassis",
        "RAID Chassis",
        "Rack Mount Chassis",
        "Sealed-case PC",
        "Multi-system Chassis",
        "Compact PCI",
        "Advanced TCA",
        "Blade",
        "Blade Enclosure",
        "Tablet",
        "Convertible",
        "Detachable",
        "IoT Gateway",
        "Embedded PC",
        "Mini PC",
        "Stick PC",
    ];
    NAMES.get(usize::from(t)).copied()
}

/// One decoded type/length field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    /// A text value (possibly empty).
    Text(String),
    /// The end-of-fields marker 0xC1.
    End,
}

/// Decodes the type/length field at `pos` in `area`; returns it and the position after it.
/// Binary fields become lowercase hex. `None` when the field runs past the area.
pub fn decode_field(area: &[u8], pos: usize) -> Option<(Field, usize)> {
    let tl = *area.get(pos)?;
    if tl == 0xc1 {
        return Some((Field::End, pos + 1));
    }
    let len = usize::from(tl & 0x3f);
    let data = area.get(pos + 1..pos + 1 + len)?;
    let text = match tl >> 6 {
        0 => data.iter().map(|b| format!("{b:02x}")).collect(),
        1 => bcd_plus(data),
        2 => six_bit_ascii(data),
        // 8-bit ASCII + Latin-1. Like ipmitool, the language code is not consulted: vendors set
        // it loosely and still write ASCII.
        _ => data.iter().map(|&b| char::from(b)).collect(),
    };
    Some((Field::Text(text), pos + 1 + len))
}

/// BCD plus: digits, space, dash, period (§13.1).
pub fn bcd_plus(data: &[u8]) -> String {
    data.iter()
        .flat_map(|b| [b >> 4, b & 0x0f])
        .map(|n| match n {
            0..=9 => char::from(b'0' + n),
            0x0a => ' ',
            0x0b => '-',
            0x0c => '.',
            _ => '?',
        })
        .collect()
}

/// 6-bit packed ASCII (0x20–0x5F), four characters per three bytes, least significant first.
pub fn six_bit_ascii(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len() * 4 / 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in data {
        acc |= u32::from(b) << bits;
        bits += 8;
        while bits >= 6 {
            out.push(char::from((acc & 0x3f) as u8 + 0x20));
            acc >>= 6;
            bits -= 6;
        }
    }
    out
}

fn clean(s: String) -> Option<String> {
    let t: String = s.chars().filter(|c| !c.is_control()).collect();
    let t = t.trim();
    (!t.is_empty()).then(|| t.to_string())
}

/// An info area's bytes (`len` byte × 8 from offset), with its checksum checked.
fn area<'a>(
    image: &'a [u8],
    offset: usize,
    name: &str,
    errors: &mut Vec<String>,
) -> Option<&'a [u8]> {
    let head = image.get(offset..offset + 2);
    let Some(&[ver, len8]) = head else {
        errors.push(format!(
            "FRU {name} area at offset {offset}: beyond the {} byte image",
            image.len()
        ));
        return None;
    };
    if ver & 0x0f != 0x01 {
        errors.push(format!("FRU {name} area: format version {ver:#04x}"));
        return None;
    }
    let len = usize::from(len8) * 8;
    if len < 8 {
        errors.push(format!("FRU {name} area: length 0"));
        return None;
    }
    let Some(a) = image.get(offset..offset + len) else {
        errors.push(format!(
            "FRU {name} area: {len} bytes at offset {offset} run past the {} byte image",
            image.len()
        ));
        return None;
    };
    if sum(a) != 0 {
        // Still decoded: a bad checksum is common on hand-edited FRUs; the fields usually read.
        errors.push(format!("FRU {name} area: checksum mismatch"));
    }
    Some(a)
}

/// Reads `n` fixed fields then custom fields until 0xC1, from `pos`.
fn fields(
    a: &[u8],
    mut pos: usize,
    n: usize,
    name: &str,
    errors: &mut Vec<String>,
) -> (Vec<Option<String>>, Vec<String>) {
    let mut fixed = Vec::with_capacity(n);
    let mut custom = Vec::new();
    loop {
        match decode_field(a, pos) {
            Some((Field::End, _)) => break,
            Some((Field::Text(t), next)) => {
                if fixed.len() < n {
                    fixed.push(clean(t));
                } else if let Some(t) = clean(t) {
                    custom.push(t);
                }
                pos = next;
            }
            None => {
                errors.push(format!(
                    "FRU {name} area: field at byte {pos} runs past the area (no end marker)"
                ));
                break;
            }
        }
    }
    if fixed.len() < n {
        errors.push(format!(
            "FRU {name} area: {} of {n} mandatory fields present",
            fixed.len()
        ));
        fixed.resize(n, None);
    }
    (fixed, custom)
}

/// Board manufacturing date: minutes since 1996-01-01 00:00 UTC, 3 bytes little-endian.
pub fn board_mfg_date(b: [u8; 3]) -> Option<String> {
    let minutes = u32::from_le_bytes([b[0], b[1], b[2], 0]);
    if minutes == 0 {
        return None;
    }
    let base = chrono::NaiveDate::from_ymd_opt(1996, 1, 1)?.and_hms_opt(0, 0, 0)?;
    let t = base.checked_add_signed(chrono::TimeDelta::minutes(i64::from(minutes)))?;
    Some(
        t.and_utc()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    )
}

/// Decodes a Chassis Info Area (bytes starting at the area).
pub fn parse_chassis(a: &[u8], errors: &mut Vec<String>) -> ChassisInfo {
    let (f, custom) = fields(a, 3, 2, "chassis", errors);
    let mut f = f.into_iter();
    ChassisInfo {
        chassis_type: a.get(2).copied().unwrap_or_default(),
        part_number: f.next().flatten(),
        serial: f.next().flatten(),
        custom,
    }
}

/// Decodes a Board Info Area.
pub fn parse_board(a: &[u8], errors: &mut Vec<String>) -> BoardInfo {
    let date = match a.get(3..6) {
        Some(&[x, y, z]) => board_mfg_date([x, y, z]),
        _ => None,
    };
    let (f, custom) = fields(a, 6, 5, "board", errors);
    let mut f = f.into_iter();
    BoardInfo {
        mfg_date: date,
        manufacturer: f.next().flatten(),
        product: f.next().flatten(),
        serial: f.next().flatten(),
        part_number: f.next().flatten(),
        fru_file_id: f.next().flatten(),
        custom,
    }
}

/// Decodes a Product Info Area.
pub fn parse_product(a: &[u8], errors: &mut Vec<String>) -> ProductInfo {
    let (f, custom) = fields(a, 3, 7, "product", errors);
    let mut f = f.into_iter();
    ProductInfo {
        manufacturer: f.next().flatten(),
        name: f.next().flatten(),
        part_number: f.next().flatten(),
        version: f.next().flatten(),
        serial: f.next().flatten(),
        asset_tag: f.next().flatten(),
        fru_file_id: f.next().flatten(),
        custom,
    }
}

/// Decodes a whole FRU image (from offset 0). Never panics.
pub fn parse(image: &[u8]) -> FruInventory {
    let mut inv = FruInventory::default();
    let h = match parse_header(image) {
        Ok(h) => h,
        Err(e) => {
            inv.errors.push(e);
            return inv;
        }
    };
    if h.chassis != 0
        && let Some(a) = area(image, h.chassis, "chassis", &mut inv.errors)
    {
        inv.chassis = Some(parse_chassis(a, &mut inv.errors));
    }
    if h.board != 0
        && let Some(a) = area(image, h.board, "board", &mut inv.errors)
    {
        inv.board = Some(parse_board(a, &mut inv.errors));
    }
    if h.product != 0
        && let Some(a) = area(image, h.product, "product", &mut inv.errors)
    {
        inv.product = Some(parse_product(a, &mut inv.errors));
    }
    inv
}

/// How many bytes of the image [`parse`] needs, given the header and the second byte (length)
/// of each info area: lets a reader fetch only what is used over a slow link. `area_len` gives
/// the length byte at an offset, or None if unknown.
pub fn needed_len(h: &CommonHeader, mut area_len: impl FnMut(usize) -> Option<u8>) -> usize {
    let mut end = 8;
    for off in [h.chassis, h.board, h.product] {
        if off != 0 {
            let len = area_len(off).map(|l| usize::from(l) * 8).unwrap_or(2);
            end = end.max(off + len.max(2));
        }
    }
    end
}
