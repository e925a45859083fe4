//! The five dress facets, their canonical label order, and which combinations are drawn.

/// Canonical facets and their label order. Label indices used anywhere in the project
/// (manifest columns, model heads, catalogue enums) follow this order.
pub const FACETS: &[(&str, &[&str])] = &[
    (
        "silhouette",
        &[
            "sheath",
            "a-line",
            "fit-and-flare",
            "shift",
            "ball-gown",
            "mermaid",
        ],
    ),
    (
        "neckline",
        &[
            "crew",
            "v-neck",
            "boat",
            "square",
            "sweetheart",
            "halter",
            "off-shoulder",
            "cowl",
        ],
    ),
    (
        "sleeve",
        &[
            "sleeveless",
            "cap",
            "short",
            "elbow",
            "three-quarter",
            "long",
        ],
    ),
    ("length", &["mini", "knee", "midi", "maxi"]),
    (
        "occasion",
        &["casual", "work", "cocktail", "evening", "bridal"],
    ),
];

/// Position of each facet in [`FACETS`] and in [`Facets::indices`].
pub const SILHOUETTE: usize = 0;
pub const NECKLINE: usize = 1;
pub const SLEEVE: usize = 2;
pub const LENGTH: usize = 3;
pub const OCCASION: usize = 4;

macro_rules! facet_enum {
    ($(#[$doc:meta])* $name:ident, $facet:expr, [$($variant:ident),+ $(,)?]) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }

        impl $name {
            /// All values in canonical label order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// Position of this value in the facet's label list.
            pub fn index(self) -> usize {
                self as usize
            }

            /// Value at a label index; `None` when out of range.
            pub fn from_index(index: usize) -> Option<$name> {
                Self::ALL.get(index).copied()
            }

            /// Canonical label text, as written in the manifest.
            pub fn label(self) -> &'static str {
                FACETS[$facet].1[self.index()]
            }
        }
    };
}

facet_enum!(
    /// Overall outline of the dress from the shoulders to the hem.
    Silhouette,
    SILHOUETTE,
    [Sheath, ALine, FitAndFlare, Shift, BallGown, Mermaid]
);
facet_enum!(
    /// Shape of the neck opening.
    Neckline,
    NECKLINE,
    [Crew, VNeck, Boat, Square, Sweetheart, Halter, OffShoulder, Cowl]
);
facet_enum!(
    /// How far the dress fabric goes down the arm.
    Sleeve,
    SLEEVE,
    [Sleeveless, Cap, Short, Elbow, ThreeQuarter, Long]
);
facet_enum!(
    /// Hem height relative to the legs.
    Length,
    LENGTH,
    [Mini, Knee, Midi, Maxi]
);
facet_enum!(
    /// What the dress is for; shown by colour, pattern, sheen and length, not by shape.
    Occasion,
    OCCASION,
    [Casual, Work, Cocktail, Evening, Bridal]
);

/// The ground-truth labels of one dress design.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Facets {
    pub silhouette: Silhouette,
    pub neckline: Neckline,
    pub sleeve: Sleeve,
    pub length: Length,
    pub occasion: Occasion,
}

impl Facets {
    /// Label index per facet, in [`FACETS`] order.
    pub fn indices(&self) -> [usize; 5] {
        [
            self.silhouette.index(),
            self.neckline.index(),
            self.sleeve.index(),
            self.length.index(),
            self.occasion.index(),
        ]
    }

    /// Label text per facet, in [`FACETS`] order.
    pub fn labels(&self) -> [&'static str; 5] {
        [
            self.silhouette.label(),
            self.neckline.label(),
            self.sleeve.label(),
            self.length.label(),
            self.occasion.label(),
        ]
    }

    /// These facets with facet `facet` (its position in [`FACETS`]) set to label index
    /// `value`; `None` when either is out of range. The result need not be drawable.
    pub fn with_value(&self, facet: usize, value: usize) -> Option<Facets> {
        let mut out = *self;
        match facet {
            SILHOUETTE => out.silhouette = Silhouette::from_index(value)?,
            NECKLINE => out.neckline = Neckline::from_index(value)?,
            SLEEVE => out.sleeve = Sleeve::from_index(value)?,
            LENGTH => out.length = Length::from_index(value)?,
            OCCASION => out.occasion = Occasion::from_index(value)?,
            _ => return None,
        }
        Some(out)
    }

    /// Whether the renderer draws this combination. Real garments rarely combine these and
    /// the drawings would be ambiguous, so the sampler never produces them:
    /// - mermaid is only midi or maxi (the flare starts at the knee and needs room below it);
    /// - ball-gown is never mini;
    /// - halter is always sleeveless (its straps leave the shoulders bare);
    /// - off-shoulder always has some sleeve (its band crosses the upper arms).
    pub fn is_drawable(&self) -> bool {
        silhouette_allows_length(self.silhouette, self.length)
            && neckline_allows_sleeve(self.neckline, self.sleeve)
    }
}

/// Length rule of [`Facets::is_drawable`].
pub fn silhouette_allows_length(silhouette: Silhouette, length: Length) -> bool {
    match silhouette {
        Silhouette::Mermaid => matches!(length, Length::Midi | Length::Maxi),
        Silhouette::BallGown => length != Length::Mini,
        _ => true,
    }
}

/// Sleeve rule of [`Facets::is_drawable`].
pub fn neckline_allows_sleeve(neckline: Neckline, sleeve: Sleeve) -> bool {
    match neckline {
        Neckline::Halter => sleeve == Sleeve::Sleeveless,
        Neckline::OffShoulder => sleeve != Sleeve::Sleeveless,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enum_variants_line_up_with_label_text() {
        assert_eq!(Silhouette::ALL.len(), FACETS[SILHOUETTE].1.len());
        assert_eq!(Neckline::ALL.len(), FACETS[NECKLINE].1.len());
        assert_eq!(Sleeve::ALL.len(), FACETS[SLEEVE].1.len());
        assert_eq!(Length::ALL.len(), FACETS[LENGTH].1.len());
        assert_eq!(Occasion::ALL.len(), FACETS[OCCASION].1.len());
        assert_eq!(Silhouette::FitAndFlare.label(), "fit-and-flare");
        assert_eq!(Silhouette::Mermaid.label(), "mermaid");
        assert_eq!(Neckline::OffShoulder.label(), "off-shoulder");
        assert_eq!(Neckline::Cowl.label(), "cowl");
        assert_eq!(Sleeve::ThreeQuarter.label(), "three-quarter");
        assert_eq!(Length::Midi.label(), "midi");
        assert_eq!(Occasion::Bridal.label(), "bridal");
        assert_eq!(Sleeve::from_index(5), Some(Sleeve::Long));
        assert_eq!(Sleeve::from_index(6), None);
    }

    #[test]
    fn with_value_sets_exactly_one_facet() {
        let base = Facets {
            silhouette: Silhouette::Sheath,
            neckline: Neckline::Crew,
            sleeve: Sleeve::Short,
            length: Length::Knee,
            occasion: Occasion::Work,
        };
        for (facet, (_, values)) in FACETS.iter().enumerate() {
            for value in 0..values.len() {
                let changed = base.with_value(facet, value).unwrap().indices();
                for (f, (&now, &before)) in changed.iter().zip(&base.indices()).enumerate() {
                    assert_eq!(now, if f == facet { value } else { before });
                }
            }
            assert_eq!(base.with_value(facet, values.len()), None);
        }
        assert_eq!(base.with_value(FACETS.len(), 0), None);
    }
}
