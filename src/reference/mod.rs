//! The Network's reference facts, shipped with the binary (from SELA's Work Programme 2019):
//! its 13 member countries and the logistic port communities it names.

pub mod load;

/// One member country of the Network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Country {
    pub code: &'static str,
    pub name_en: &'static str,
    pub name_es: &'static str,
}

/// One logistic port community.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortCommunity {
    pub name: &'static str,
    pub country_code: &'static str,
    pub unlocode: &'static str,
    pub status: &'static str,
}

const COUNTRIES_CSV: &str = include_str!("countries.csv");
const PORT_COMMUNITIES_CSV: &str = include_str!("port_communities.csv");

/// Data rows of a shipped CSV (no quoting in these files), split into fields.
fn rows(csv: &'static str) -> impl Iterator<Item = Vec<&'static str>> {
    csv.lines()
        .skip(1)
        .filter(|line| !line.trim().is_empty())
        .map(|line| line.split(',').map(str::trim).collect())
}

pub fn countries() -> Vec<Country> {
    rows(COUNTRIES_CSV)
        .map(|f| Country {
            code: f[0],
            name_en: f[1],
            name_es: f[2],
        })
        .collect()
}

pub fn port_communities() -> Vec<PortCommunity> {
    rows(PORT_COMMUNITIES_CSV)
        .map(|f| PortCommunity {
            name: f[0],
            country_code: f[1],
            unlocode: f[2],
            status: f[3],
        })
        .collect()
}

pub fn is_member_country(code: &str) -> bool {
    countries().iter().any(|country| country.code == code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_network_has_thirteen_countries_and_every_community_is_in_one() {
        let countries = countries();
        assert_eq!(countries.len(), 13);
        assert!(countries.iter().any(|c| c.code == "MX" && c.name_es == "México"));
        let communities = port_communities();
        assert_eq!(communities.len(), 15);
        assert!(communities.iter().all(|p| is_member_country(p.country_code)));
        assert!(communities.iter().all(|p| p.unlocode.starts_with(p.country_code)));
    }
}
