//! CHAP packets (RFC 1994 §4), shared by CHAP-MD5, MS-CHAPv1 and MS-CHAPv2:
//! Challenge and Response carry Value-Size, Value and Name; Success and Failure a
//! message.

/// Challenge.
pub const CHALLENGE: u8 = 1;
/// Response.
pub const RESPONSE: u8 = 2;
/// Success.
pub const SUCCESS: u8 = 3;
/// Failure.
pub const FAILURE: u8 = 4;

/// The data of a Challenge or Response (borrowed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Value<'a> {
    /// The challenge or response value.
    pub value: &'a [u8],
    /// The sender's name.
    pub name: &'a [u8],
}

impl<'a> Value<'a> {
    /// Parses Value-Size, Value, Name.
    pub fn parse(data: &'a [u8]) -> Option<Self> {
        let (&size, rest) = data.split_first()?;
        let value = rest.get(..usize::from(size))?;
        Some(Value {
            value,
            name: &rest[value.len()..],
        })
    }

    /// Encodes Value-Size, Value, Name (value cut to 255 bytes).
    pub fn encode(&self) -> Vec<u8> {
        let value = &self.value[..self.value.len().min(255)];
        let mut out = vec![value.len() as u8];
        out.extend_from_slice(value);
        out.extend_from_slice(self.name);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_round_trip() {
        let v = Value {
            value: &[1, 2, 3],
            name: b"pptpd",
        };
        assert_eq!(Value::parse(&v.encode()), Some(v));
        assert_eq!(Value::parse(&[4, 1]), None);
        assert_eq!(Value::parse(&[]), None);
    }
}
