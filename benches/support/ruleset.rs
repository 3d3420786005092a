//! Generated rule sets for the benches, shaped like a large deployment: a hand-written
//! policy at the top (anonymous callers, a blocklist file, a VIP list, premium-rate ranges,
//! a flood limit, after-hours, guests on video, data-only calls, spam names), then bulk
//! rules of the kinds tools generate (blocked numbers and ids, per-tenant policies, number
//! ranges, value lists, name patterns, meeting and chat rules), then one last rule.
//!
//! Two invites come with each set: `last` is decided by the last rule and by no other;
//! `none` matches nothing. Both share values with many rules (their tenant, region and
//! name), so evaluation has candidates to reject rather than a lucky empty lookup.
//! Deterministic: the same size always gives the same files.

#![allow(dead_code)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use callscreen::facts::{Caller, Facts, Target};
use callscreen::rules::Source;

/// Rules per generated file.
const RULES_PER_FILE: usize = 1_000;
/// Numbers in the blocklist file.
const BLOCKED_NUMBERS: usize = 2_000;
const TENANTS: usize = 500;

/// The tenant of the two bench invites; bulk rules on it never match them.
pub const BUSY_TENANT: usize = 0;
pub const QUIET_TENANT: usize = 1;

pub struct Generated {
    /// File name and text, in load order.
    pub files: Vec<(String, String)>,
    pub rules: usize,
    /// Decided by the last rule only.
    pub last: Facts,
    pub last_rule: String,
    /// Matched by no rule.
    pub none: Facts,
}

impl Generated {
    /// The files as compiler sources, as if read from `dir`.
    pub fn sources(&self, dir: &Path) -> Vec<Source> {
        self.files
            .iter()
            .map(|(name, text)| Source {
                path: dir.join(name),
                text: text.clone(),
            })
            .collect()
    }

    /// Writes the files into `dir`, which must exist.
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        for (name, text) in &self.files {
            std::fs::write(dir.join(name), text)?;
        }
        Ok(())
    }
}

/// xorshift64*: enough randomness for realistic-looking values, and repeatable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn digits(&mut self, count: usize) -> String {
        (0..count)
            .map(|_| char::from(b'0' + self.below(10) as u8))
            .collect()
    }

    /// A GUID-shaped id, as Graph gives users, tenants and threads.
    fn guid(&mut self) -> String {
        let a = self.next();
        let b = self.next();
        format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xffff,
            b >> 48,
            b & 0xffff_ffff_ffff
        )
    }

    /// A made-up word, for names and patterns.
    fn word(&mut self) -> String {
        const SYLLABLES: &[&str] = &[
            "ka", "lo", "mi", "ren", "sa", "tor", "vel", "dan", "fi", "gor", "hul", "jen", "mar",
            "nis", "pel", "qua", "rix", "sun", "tam", "zor",
        ];
        let count = 2 + self.below(2);
        (0..count)
            .map(|_| SYLLABLES[self.below(SYLLABLES.len())])
            .collect()
    }
}

fn tenant(at: usize) -> String {
    format!("{at:08x}-7e1a-4c1d-9b2a-5e6a0a2edd70")
}

/// The policy rules that head the set, at most `count` of them.
fn policy(count: usize) -> Vec<String> {
    let rules = [
        "name = \"no-anonymous\"\naction = \"reject\"\nreason = \"forbidden\"\n\
         [rule.when]\ncaller.kind = \"anonymous\"",
        "name = \"blocked-numbers\"\naction = \"reject\"\nreason = \"busy\"\n\
         [rule.when]\ncaller.phone = { in_list = \"blocked\" }",
        "name = \"vip\"\naction = \"allow\"\n[rule.when]\ncaller.id = { in_list = \"vip\" }",
        "name = \"bot-to-bot\"\naction = \"reject\"\nmode = \"audit\"\n\
         [rule.when]\ncaller.kind = [\"application\", \"applicationInstance\"]",
        "name = \"premium-rate\"\naction = \"reject\"\nreason = \"busy\"\n\
         [rule.when]\ncaller.phone = { prefix = [\"+1 900\", \"+1 976\", \"+44 909\"] }",
        "name = \"flood\"\naction = \"reject\"\nreason = \"busy\"\n[rule.when]\n\
         caller.kind = \"phone\"\n[rule.when.rate]\nkey = \"caller.phone\"\nover = 20\n\
         within = \"1m\"",
        "name = \"after-hours\"\naction = \"reject\"\nreason = \"busy\"\n[rule.when]\n\
         caller.kind = \"phone\"\n[rule.when.not.time]\nzone = \"Europe/Berlin\"\n\
         days = [\"mon-fri\"]\nhours = [\"07:00-20:00\"]",
        "name = \"guests-audio-only\"\naction = \"reject\"\n[rule.when]\n\
         caller.kind = \"guest\"\nmodalities = { any = [\"video\"] }",
        "name = \"data-only\"\naction = \"reject\"\n[rule.when]\n\
         modalities = { only = [\"data\"] }",
        "name = \"spam-names\"\naction = \"reject\"\n[rule.when]\n\
         caller.name = { regex = '(spam|robo)[ -]?call' }",
        "name = \"transferred-outsiders\"\naction = \"reject\"\n[rule.when]\n\
         transferred = true\ncaller.tenant = { not = \"5e6a0a2e-dd70-434d-81d7-7cffb7decc0c\" }",
        "name = \"foreign-meetings\"\naction = \"reject\"\n[rule.when]\ngroup = true\n\
         meeting.organizer.tenant = { exists = true, \
         not = \"5e6a0a2e-dd70-434d-81d7-7cffb7decc0c\" }",
    ];
    rules
        .iter()
        .take(count)
        .map(|rule| rule.to_string())
        .collect()
}

/// One bulk rule. None of them matches the bench invites: rules on their tenants ask for
/// a different kind, region or modality.
fn bulk(rng: &mut Rng, at: usize) -> String {
    let name = format!("name = \"gen-{at:06}\"");
    let reject = "action = \"reject\"\nreason = \"busy\"";
    let when = match rng.below(100) {
        0..=29 => format!(
            "caller.phone = \"+1 555 {} {}\"",
            rng.digits(3),
            rng.digits(4)
        ),
        30..=44 => format!("caller.id = \"{}\"", rng.guid()),
        45..=54 => {
            // Per-tenant policies: the tenant is shared, the rest makes each rule its own.
            let other = match rng.below(3) {
                0 => "caller.kind = \"guest\"",
                1 => "caller.region = \"apac\"",
                _ => "modalities = { any = [\"data\"] }",
            };
            format!(
                "caller.tenant = \"{}\"\n{other}\n\
                 caller.name = {{ not = {{ prefix = \"{} {}\" }} }}",
                tenant(rng.below(TENANTS)),
                rng.word(),
                rng.word()
            )
        }
        55..=59 => format!(
            "tenant = \"{}\"\ntarget.id = \"{}\"",
            tenant(rng.below(TENANTS)),
            rng.guid()
        ),
        60..=67 => {
            let count = 3 + rng.below(6);
            let values: Vec<String> = if rng.below(2) == 0 {
                (0..count).map(|_| format!("\"{}\"", rng.guid())).collect()
            } else {
                (0..count)
                    .map(|_| format!("\"+44 20 {} {}\"", rng.digits(4), rng.digits(4)))
                    .collect()
            };
            let field = if values[0].starts_with("\"+") {
                "caller.phone"
            } else {
                "caller.id"
            };
            format!("{field} = [{}]", values.join(", "))
        }
        68..=77 => {
            let country = ["1", "44", "49", "33", "81"][rng.below(5)];
            let digits = 5 + rng.below(3);
            format!(
                "caller.kind = \"phone\"\ncaller.phone = {{ prefix = \"+{country} {}\" }}",
                rng.digits(digits)
            )
        }
        78..=81 => match rng.below(2) {
            0 => format!(
                "caller.name = {{ prefix = \"{} {}\" }}",
                rng.word(),
                rng.word()
            ),
            _ => format!("caller.name = {{ suffix = \" ({})\" }}", rng.word()),
        },
        82..=84 => match rng.below(2) {
            0 => format!(
                "caller.name = {{ regex = '^{}[0-9]+ {}$' }}",
                rng.word(),
                rng.word()
            ),
            _ => format!("caller.id = {{ regex = '^{:08x}-' }}", rng.next() >> 32),
        },
        85..=89 => match rng.below(2) {
            0 => format!("group = true\nmeeting.organizer.id = \"{}\"", rng.guid()),
            _ => format!(
                "group = true\nchat.thread = \"19:meeting_{}@thread.v2\"",
                rng.guid().replace('-', "")
            ),
        },
        90..=96 => format!(
            "caller.tenant = \"{}\"\ncaller.region = \"emea\"\n\
             caller.language = {{ prefix = \"{}\" }}\n\
             caller.name = {{ not = {{ suffix = \" ({})\" }} }}",
            tenant(rng.below(TENANTS)),
            ["fr", "de", "it", "es"][rng.below(4)],
            rng.word()
        ),
        _ => format!(
            "caller.id = \"{}\"\nmodalities = {{ none = [\"video\"] }}",
            rng.guid()
        ),
    };
    format!("{name}\n{reject}\n[rule.when]\n{when}")
}

/// A set of `rules` rules (at least 2).
pub fn rule_set(rules: usize) -> Generated {
    assert!(rules >= 2, "a set needs room for a rule and the last rule");
    let mut rng = Rng(0x00c0_ffee_5eed ^ rules as u64);
    let mut bodies = policy(rules - 1);
    for at in bodies.len()..rules - 1 {
        bodies.push(bulk(&mut rng, at));
    }
    let last_rule = "last-rule".to_owned();
    bodies.push(format!(
        "name = \"{last_rule}\"\naction = \"reject\"\n[rule.when]\ncaller.tenant = \"{}\"\n\
         caller.kind = \"user\"\ncaller.region = \"emea\"\nmodalities = {{ any = [\"video\"] }}",
        tenant(BUSY_TENANT)
    ));

    let mut files = Vec::new();
    let mut blocked = String::new();
    for _ in 0..BLOCKED_NUMBERS {
        let _ = writeln!(blocked, "+1 555 {} {}", rng.digits(3), rng.digits(4));
    }
    files.push(("blocked.list".to_owned(), blocked));
    for (chunk, rules) in bodies.chunks(RULES_PER_FILE).enumerate() {
        let mut text = String::new();
        if chunk == 0 {
            let vip: Vec<String> = (0..50).map(|_| format!("\"{}\"", rng.guid())).collect();
            let _ = writeln!(text, "[lists]\nvip = [{}]\n", vip.join(", "));
        }
        for rule in rules {
            let _ = writeln!(text, "[[rule]]\n{rule}\n");
        }
        files.push((format!("{:03}-generated.toml", chunk), text));
    }

    Generated {
        files,
        rules,
        last: invite(&mut rng, BUSY_TENANT, true),
        last_rule,
        none: invite(&mut rng, QUIET_TENANT, false),
    }
}

/// A Teams user from `tenant` in EMEA, asking for audio (and video).
fn invite(rng: &mut Rng, tenant_at: usize, video: bool) -> Facts {
    let modalities = if video {
        vec!["audio".into(), "video".into()]
    } else {
        vec!["audio".into()]
    };
    Facts {
        call_id: rng.guid(),
        caller: Caller {
            kind: "user".into(),
            id: Some(rng.guid()),
            name: Some("Alex Kalomi".into()),
            tenant: Some(tenant(tenant_at)),
            region: Some("emea".into()),
            language: Some("en-GB".into()),
            ..Caller::default()
        },
        target: Target {
            id: Some(rng.guid()),
            kind: Some("applicationInstance".into()),
        },
        tenant: Some("5e6a0a2e-dd70-434d-81d7-7cffb7decc0c".into()),
        modalities,
        call_chain_id: Some(rng.guid()),
        ..Facts::default()
    }
}

/// A temporary folder path for generated rules, unique to this process.
pub fn scratch_dir(label: &str) -> PathBuf {
    std::env::temp_dir().join(format!("callscreen-{label}-{}", std::process::id()))
}
