//! EDNS Padding (RFC 7830) of responses over encrypted transports, by the block policy
//! RFC 8467 recommends: a watcher of the wire learns from a response's size only how many
//! 468-octet blocks it fills, not whether it was one pod's address or a whole Service.

use crate::dns::wire::{OPT_LEN, PADDING_OPTION, qtype, u16_at};

/// The block a padded response's length is a multiple of: RFC 8467 4.1's recommended
/// policy for responses (Knot and unbound use it).
pub const PADDING_BLOCK: usize = 468;

/// Pads `response`, which ends with the OPT record [`write_opt`] wrote, to a multiple of
/// `block` octets with a Padding option (RFC 7830) in that OPT; false, and nothing changed,
/// when it does not end so or the padded message would pass 65,535 octets.
pub fn pad(response: &mut Vec<u8>, block: usize) -> bool {
    let Some(opt_at) = response.len().checked_sub(OPT_LEN) else {
        return false;
    };
    let opt = &response[opt_at..];
    if opt[0] != 0 || u16_at(opt, 1) != Some(qtype::OPT) || u16_at(opt, 9) != Some(0) {
        return false;
    }
    // The option's own code and length come first.
    let unpadded = response.len() + 4;
    let padded = unpadded.div_ceil(block) * block;
    let Ok(rdata_len) = u16::try_from(padded - response.len()) else {
        return false;
    };
    if padded > usize::from(u16::MAX) {
        return false;
    }
    let fill = padded - unpadded;
    response[opt_at + 9..opt_at + 11].copy_from_slice(&rdata_len.to_be_bytes());
    response.extend_from_slice(&PADDING_OPTION.to_be_bytes());
    response.extend_from_slice(&(fill as u16).to_be_bytes());
    response.resize(padded, 0);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::wire::write_opt;

    #[test]
    fn padding_fills_the_block_in_the_closing_opt() {
        let mut response = vec![0xAB; 100];
        write_opt(&mut response, 1232, 0, false);
        assert!(pad(&mut response, PADDING_BLOCK));
        assert_eq!(response.len(), PADDING_BLOCK);
        // The OPT's RDATA is the option: code 12, its length, zeros.
        let opt = &response[100..];
        assert_eq!(u16_at(opt, 9), Some((PADDING_BLOCK - 100 - OPT_LEN) as u16));
        assert_eq!(u16_at(opt, 11), Some(PADDING_OPTION));
        assert_eq!(
            usize::from(u16_at(opt, 13).unwrap()),
            PADDING_BLOCK - 100 - OPT_LEN - 4
        );
        assert!(opt[15..].iter().all(|&b| b == 0));
        // Exactly at a block less the option's head: no fill, still a multiple.
        let mut exact = vec![0; PADDING_BLOCK - OPT_LEN - 4];
        write_opt(&mut exact, 1232, 0, false);
        assert!(pad(&mut exact, PADDING_BLOCK));
        assert_eq!(exact.len(), PADDING_BLOCK);
        // Not ending with an empty OPT, or too long to pad: untouched.
        let mut plain = vec![0; 40];
        assert!(!pad(&mut plain, PADDING_BLOCK));
        assert_eq!(plain.len(), 40);
        let mut huge = vec![0; 65_510];
        write_opt(&mut huge, 1232, 0, false);
        let before = huge.clone();
        assert!(!pad(&mut huge, PADDING_BLOCK));
        assert_eq!(huge, before);
    }
}
