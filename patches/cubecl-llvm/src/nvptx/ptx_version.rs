//! The PTX ISA version an LLVM build would emit for the installed driver.

use core::fmt;

/// A PTX ISA version written without its dot (ISA 8.7 is `87`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PtxVersion(u32);

impl PtxVersion {
    /// The newest PTX ISA that a driver reporting `driver` (`cuDriverGetVersion`'s number,
    /// 1000 × major + 10 × minor) loads, or `None` before CUDA 10.0.
    ///
    /// Only the LLVM compiler reads it; with NVRTC the toolkit chooses the ISA. The mapping is
    /// the one in NVIDIA's PTX ISA release notes: CUDA 10.0 introduced ISA 6.3, each 10.x/11.x
    /// minor release one more (11.0 is 7.0), 12.0 is 8.0 (12.5 and 12.6 both 8.5, 12.8 8.7,
    /// 12.9 8.8) and 13.0 is 9.0.
    pub fn for_driver(driver: i32) -> Option<Self> {
        let major = driver / 1000;
        let minor = (driver % 1000) / 10;
        let isa = match major {
            10 => 63 + minor.min(2),
            11 => 70 + minor.min(8),
            12 => match minor {
                0..=5 => 80 + minor,
                6 | 7 => 85,
                8 => 87,
                _ => 88,
            },
            13.. => 90 + minor.min(3),
            _ => return None,
        };
        Some(Self(isa as u32))
    }
}

impl fmt::Display for PtxVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ptx{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::PtxVersion;

    #[test]
    fn drivers_map_to_the_isa_of_their_release() {
        assert_eq!(PtxVersion::for_driver(9020), None);
        assert_eq!(PtxVersion::for_driver(10000), Some(PtxVersion(63)));
        assert_eq!(PtxVersion::for_driver(11080), Some(PtxVersion(78)));
        assert_eq!(PtxVersion::for_driver(12040), Some(PtxVersion(84)));
        assert_eq!(PtxVersion::for_driver(12060), Some(PtxVersion(85)));
        assert_eq!(PtxVersion::for_driver(12080), Some(PtxVersion(87)));
        assert_eq!(PtxVersion::for_driver(13000), Some(PtxVersion(90)));
        assert_eq!(PtxVersion(87).to_string(), "ptx87");
    }
}
