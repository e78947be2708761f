//! `cidr_contains(ip, cidr)`: whether an IPv4 or IPv6 address lies in a network.
//!
//! Vectorised over Arrow string arrays (`Utf8`, `LargeUtf8`, `Utf8View`); the usual call
//! has a constant network, which is parsed once per batch. A NULL in either argument, or
//! an address that does not parse, gives NULL (unknown, so `NOT cidr_contains(..)` does not
//! select garbage); a network that does not parse is an error, since it is the
//! investigator's typo. IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`) match IPv4 networks.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, BooleanArray, StringArrayType};
use arrow_buffer::{BooleanBuffer, NullBuffer};
use arrow_schema::DataType;
use datafusion::common::{exec_err, Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// An IP network: an address prefix of `bits` bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cidr {
    V4 { net: u32, mask: u32 },
    V6 { net: u128, mask: u128 },
}

impl Cidr {
    /// Parses `a.b.c.d/n`, `x:y::z/n`, or a bare address (a /32 or /128). Host bits below
    /// the prefix are ignored, as in `10.1.2.3/8`.
    pub fn parse(text: &str) -> Option<Cidr> {
        let (addr, bits) = match text.trim().split_once('/') {
            Some((addr, bits)) => (addr, Some(bits.parse::<u32>().ok()?)),
            None => (text.trim(), None),
        };
        match addr.parse::<IpAddr>().ok()? {
            IpAddr::V4(addr) => {
                let bits = bits.unwrap_or(32);
                if bits > 32 {
                    return None;
                }
                let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
                Some(Cidr::V4 {
                    net: u32::from(addr) & mask,
                    mask,
                })
            }
            IpAddr::V6(addr) => {
                let bits = bits.unwrap_or(128);
                if bits > 128 {
                    return None;
                }
                let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
                Some(Cidr::V6 {
                    net: u128::from(addr) & mask,
                    mask,
                })
            }
        }
    }

    /// Whether `ip` lies in this network; IPv4 and IPv4-mapped IPv6 are the same address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (*self, ip) {
            (Cidr::V4 { net, mask }, IpAddr::V4(ip)) => u32::from(ip) & mask == net,
            (Cidr::V4 { net, mask }, IpAddr::V6(ip)) => ip
                .to_ipv4_mapped()
                .is_some_and(|ip| u32::from(ip) & mask == net),
            (Cidr::V6 { net, mask }, IpAddr::V4(ip)) => {
                u128::from(ip.to_ipv6_mapped()) & mask == net
            }
            (Cidr::V6 { net, mask }, IpAddr::V6(ip)) => u128::from(ip) & mask == net,
        }
    }

    /// Whether the address text lies in this network; `None` if it is not an address.
    fn contains_text(&self, text: &str) -> Option<bool> {
        // The common case is an IPv4 address against an IPv4 network: parse the dotted
        // quad by hand (a filter over a day of events calls this millions of times) and
        // skip IpAddr's IPv6 attempt.
        if let Some(ip) = parse_ipv4(text.as_bytes()) {
            return Some(match *self {
                Cidr::V4 { net, mask } => ip & mask == net,
                Cidr::V6 { .. } => self.contains(IpAddr::V4(Ipv4Addr::from(ip))),
            });
        }
        text.parse::<Ipv6Addr>()
            .ok()
            .map(|ip| self.contains(IpAddr::V6(ip)))
    }
}

/// A dotted-quad IPv4 address, accepting exactly what `Ipv4Addr::from_str` accepts: four
/// decimal octets of at most three digits, no leading zeros, each at most 255. One pass
/// over the bytes: a filter over a day of events calls this millions of times.
fn parse_ipv4(text: &[u8]) -> Option<u32> {
    if !(7..=15).contains(&text.len()) {
        return None;
    }
    let (mut address, mut octet, mut digits, mut dots) = (0u32, 0u32, 0u32, 0u32);
    for &byte in text {
        if byte == b'.' {
            if digits == 0 || dots == 3 {
                return None;
            }
            address = address << 8 | octet;
            (octet, digits, dots) = (0, 0, dots + 1);
            continue;
        }
        let digit = byte.wrapping_sub(b'0');
        // A digit after a leading zero is refused, as std does; a fourth digit always
        // makes the octet exceed 255.
        if digit > 9 || (digits == 1 && octet == 0) {
            return None;
        }
        octet = octet * 10 + u32::from(digit);
        digits += 1;
        if octet > 255 {
            return None;
        }
    }
    (dots == 3 && digits > 0).then_some(address << 8 | octet)
}

/// `cidr_contains` of every address in a column against one network: the values in one
/// pass, the validity (an unparsable address is NULL) in a second pass only when some
/// address did not parse.
fn contains_column<'a, A: StringArrayType<'a> + Copy>(ips: A, network: &Cidr) -> BooleanArray {
    let mut unparsable = false;
    let values = BooleanBuffer::collect_bool(ips.len(), |row| {
        if ips.is_null(row) {
            return false;
        }
        network.contains_text(ips.value(row)).unwrap_or_else(|| {
            unparsable = true;
            false
        })
    });
    let nulls = if unparsable {
        let known = BooleanBuffer::collect_bool(ips.len(), |row| {
            ips.is_valid(row) && network.contains_text(ips.value(row)).is_some()
        });
        Some(NullBuffer::new(known))
    } else {
        ips.nulls().cloned()
    };
    BooleanArray::new(values, nulls)
}

/// The `cidr_contains` scalar UDF.
pub fn cidr_contains_udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(CidrContains {
        signature: Signature::string(2, Volatility::Immutable),
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct CidrContains {
    signature: Signature,
}

impl ScalarUDFImpl for CidrContains {
    fn name(&self) -> &str {
        "cidr_contains"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let [ip, cidr] = <[ColumnarValue; 2]>::try_from(args.args).map_err(|_| {
            datafusion::error::DataFusionError::Plan("cidr_contains takes 2 arguments".into())
        })?;
        match (ip, cidr) {
            (ColumnarValue::Scalar(ip), ColumnarValue::Scalar(cidr)) => {
                let result = match (scalar_text(&ip)?, scalar_text(&cidr)?) {
                    (Some(ip), Some(cidr)) => parse_cidr(cidr)?.contains_text(ip),
                    _ => None,
                };
                Ok(ColumnarValue::Scalar(ScalarValue::Boolean(result)))
            }
            (ColumnarValue::Array(ips), ColumnarValue::Scalar(cidr)) => {
                let Some(cidr) = scalar_text(&cidr)? else {
                    return Ok(ColumnarValue::Scalar(ScalarValue::Boolean(None)));
                };
                let network = parse_cidr(cidr)?;
                let result = match ips.data_type() {
                    DataType::Utf8 => contains_column(ips.as_string::<i32>(), &network),
                    DataType::LargeUtf8 => contains_column(ips.as_string::<i64>(), &network),
                    DataType::Utf8View => contains_column(ips.as_string_view(), &network),
                    DataType::Null => BooleanArray::new_null(ips.len()),
                    other => return exec_err!("cidr_contains takes text arguments, got {other}"),
                };
                Ok(ColumnarValue::Array(Arc::new(result)))
            }
            (ip, cidr) => {
                let ips = ip.into_array(rows)?;
                let cidrs = cidr.into_array(rows)?;
                let mut networks: Vec<Option<&str>> = Vec::with_capacity(rows);
                for_each_text(&cidrs, |cidr| networks.push(cidr))?;
                // Consecutive rows usually share the network: parse it once per run.
                let mut last: Option<(&str, Cidr)> = None;
                let mut out = Vec::with_capacity(rows);
                let mut failure = None;
                for_each_text(&ips, |ip| {
                    let row = out.len();
                    let value = match (ip, networks[row]) {
                        (Some(ip), Some(text)) => {
                            let network = match last {
                                Some((seen, network)) if seen == text => Some(network),
                                _ => Cidr::parse(text),
                            };
                            match network {
                                Some(network) => {
                                    last = Some((text, network));
                                    network.contains_text(ip)
                                }
                                None => {
                                    failure.get_or_insert_with(|| text.to_owned());
                                    None
                                }
                            }
                        }
                        _ => None,
                    };
                    out.push(value);
                })?;
                if let Some(text) = failure {
                    parse_cidr(&text)?;
                }
                Ok(ColumnarValue::Array(Arc::new(BooleanArray::from(out))))
            }
        }
    }
}

fn parse_cidr(text: &str) -> Result<Cidr> {
    match Cidr::parse(text) {
        Some(cidr) => Ok(cidr),
        None => exec_err!(
            "cidr_contains: `{text}` is not a CIDR network (like 10.0.0.0/8 or 2001:db8::/32)"
        ),
    }
}

fn scalar_text(value: &ScalarValue) -> Result<Option<&str>> {
    match value {
        ScalarValue::Utf8(text) | ScalarValue::LargeUtf8(text) | ScalarValue::Utf8View(text) => {
            Ok(text.as_deref())
        }
        ScalarValue::Null => Ok(None),
        other => exec_err!(
            "cidr_contains takes text arguments, got {}",
            other.data_type()
        ),
    }
}

/// Calls `f` with each row of a string array, in order.
fn for_each_text<'a>(array: &'a ArrayRef, mut f: impl FnMut(Option<&'a str>)) -> Result<()> {
    match array.data_type() {
        DataType::Utf8 => array.as_string::<i32>().iter().for_each(f),
        DataType::LargeUtf8 => array.as_string::<i64>().iter().for_each(f),
        DataType::Utf8View => array.as_string_view().iter().for_each(f),
        DataType::Null => (0..array.len()).for_each(|_| f(None)),
        other => return exec_err!("cidr_contains takes text arguments, got {other}"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contains(cidr: &str, ip: &str) -> Option<bool> {
        Cidr::parse(cidr).unwrap().contains_text(ip)
    }

    #[test]
    fn ipv4_networks_contain_their_addresses_only() {
        assert_eq!(contains("10.0.0.0/8", "10.255.1.2"), Some(true));
        assert_eq!(contains("10.0.0.0/8", "11.0.0.1"), Some(false));
        assert_eq!(contains("192.168.4.0/22", "192.168.7.255"), Some(true));
        assert_eq!(contains("192.168.4.0/22", "192.168.8.0"), Some(false));
        assert_eq!(contains("0.0.0.0/0", "8.8.8.8"), Some(true));
        assert_eq!(contains("203.0.113.7", "203.0.113.7"), Some(true));
        assert_eq!(
            contains("10.1.2.3/8", "10.9.9.9"),
            Some(true),
            "host bits ignored"
        );
    }

    #[test]
    fn ipv6_networks_and_mapped_ipv4_addresses() {
        assert_eq!(contains("2001:db8::/32", "2001:db8:1::7"), Some(true));
        assert_eq!(contains("2001:db8::/32", "2001:db9::1"), Some(false));
        assert_eq!(contains("::/0", "fe80::1"), Some(true));
        assert_eq!(contains("10.0.0.0/8", "::ffff:10.1.2.3"), Some(true));
        assert_eq!(contains("::ffff:0:0/96", "10.1.2.3"), Some(true));
        assert_eq!(contains("10.0.0.0/8", "2001:db8::1"), Some(false));
    }

    #[test]
    fn text_that_is_not_an_address_is_unknown() {
        assert_eq!(contains("10.0.0.0/8", "not-an-ip"), None);
        assert_eq!(contains("10.0.0.0/8", ""), None);
    }

    #[test]
    fn the_hand_parser_reads_ipv4_exactly_like_std() {
        for text in [
            "0.0.0.0",
            "255.255.255.255",
            "10.18.16.1",
            "256.1.1.1",
            "01.2.3.4",
            "1.2.3.04",
            "1.2.3",
            "1.2.3.4.5",
            "1..2.3",
            "1.2.3.4 ",
            " 1.2.3.4",
            "1.2.3.4.",
            "1000.1.1.1",
            "+1.2.3.4",
            "::ffff:1.2.3.4",
        ] {
            let std = text.parse::<Ipv4Addr>().ok().map(u32::from);
            assert_eq!(parse_ipv4(text.as_bytes()), std, "{text:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn the_hand_parser_agrees_with_std_on_any_dotted_digits(text in "[0-9.]{0,17}") {
            let std = text.parse::<Ipv4Addr>().ok().map(u32::from);
            proptest::prop_assert_eq!(parse_ipv4(text.as_bytes()), std);
        }

        #[test]
        fn the_hand_parser_reads_every_address_std_prints(address in proptest::prelude::any::<u32>()) {
            let text = Ipv4Addr::from(address).to_string();
            proptest::prop_assert_eq!(parse_ipv4(text.as_bytes()), Some(address));
        }
    }

    #[test]
    fn a_column_of_addresses_is_true_false_or_null_row_by_row() {
        let network = Cidr::parse("10.0.0.0/8").unwrap();
        let rows = [
            Some("10.1.2.3"),
            None,
            Some("junk"),
            Some("::ffff:10.0.0.1"),
            Some("11.0.0.1"),
        ];
        let expected = [Some(true), None, None, Some(true), Some(false)];
        let utf8 = arrow_array::StringArray::from(rows.to_vec());
        let view = arrow_array::StringViewArray::from(rows.to_vec());
        for result in [
            contains_column(&utf8, &network),
            contains_column(&view, &network),
        ] {
            assert_eq!(result.iter().collect::<Vec<_>>(), expected);
        }
        let valid = arrow_array::StringViewArray::from(vec![Some("10.0.0.1"), None]);
        let result = contains_column(&valid, &network);
        assert_eq!(result.iter().collect::<Vec<_>>(), [Some(true), None]);
    }

    #[test]
    fn malformed_networks_do_not_parse() {
        for bad in [
            "10.0.0.0/33",
            "2001:db8::/129",
            "10.0.0/8",
            "10.0.0.0/",
            "x",
            "10.0.0.0/-1",
        ] {
            assert_eq!(Cidr::parse(bad), None, "{bad}");
        }
    }
}
