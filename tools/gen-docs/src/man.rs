//! Man pages and shell completions of one program, rendered from its clap
//! `Command`: clap_mangen's NAME, SYNOPSIS, DESCRIPTION, OPTIONS and
//! SUBCOMMANDS (DESCRIPTION keeps indented lines such as usage examples as
//! written), then EXIT STATUS (the program's `after_help` text, which is
//! what `--help` says about exit codes, followed by the rows of
//! `hpcs::exit::TABLE` that apply to the program), SEE ALSO and VERSION.
//! Subcommands get pages of their own (`hpcs-pack-results-verify.1`).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use clap::Command;
use clap_complete::Shell;
use clap_mangen::roff::{bold, roman, Roff};
use clap_mangen::Man;

/// The user binaries; each program's page names the others under SEE ALSO.
pub const PROGRAMS: &[&str] = &["hpcs-pack", "hpcs-mount", "hpcs-job"];

/// Every file generated for one program: path relative to
/// [`crate::packaging_dir`] → contents. `exit_table` is `hpcs::exit::TABLE` for
/// programs that use the shared exit codes, `None` for one whose `--help`
/// lists its own.
pub fn generate(cmd: Command, exit_table: Option<&[(u8, &str)]>) -> BTreeMap<String, Vec<u8>> {
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let name = cmd.get_name().to_string();
    let program = Program {
        name: &name,
        version: cmd.get_version().unwrap_or_default(),
        exit_table,
    };
    let mut files = BTreeMap::new();
    man_pages(&cmd, &program, &mut files);
    for (shell, path) in completion_paths(&name) {
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut cmd.clone(), &name, &mut out);
        files.insert(path, out);
    }
    files
}

/// Where each shell's completion script goes, as the Debian package installs
/// it: bash by command name, zsh as `_NAME`, fish as `NAME.fish`.
pub(crate) fn completion_paths(name: &str) -> [(Shell, String); 3] {
    [
        (Shell::Bash, format!("completions/bash/{name}")),
        (Shell::Zsh, format!("completions/zsh/_{name}")),
        (Shell::Fish, format!("completions/fish/{name}.fish")),
    ]
}

/// What every page of one program shares.
struct Program<'a> {
    name: &'a str,
    version: &'a str,
    exit_table: Option<&'a [(u8, &'a str)]>,
}

/// Renders the page of `cmd` and, recursively, of its visible subcommands.
fn man_pages(cmd: &Command, program: &Program, files: &mut BTreeMap<String, Vec<u8>>) {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        man_pages(sub, program, files);
    }
    let page = page_name(cmd);
    let man = Man::new(cmd.clone())
        .source(format!("hpcs {}", program.version))
        .manual("hpcs");
    let mut out = Vec::new();
    render(&man, cmd, program, &mut out).expect("rendering into a Vec cannot fail");
    files.insert(format!("man/{page}.1"), once_preamble(out));
}

/// clap_mangen starts every separately rendered section with the same two
/// lines defining the `Aq` string; one copy, at the top, is enough.
fn once_preamble(page: Vec<u8>) -> Vec<u8> {
    const PREAMBLE: &str = ".ie \\n(.g .ds Aq \\(aq\n.el .ds Aq '\n";
    let text = String::from_utf8(page).expect("roff output is UTF-8");
    let rest = text.strip_prefix(PREAMBLE).unwrap_or(&text);
    format!("{PREAMBLE}{}", rest.replace(PREAMBLE, "")).into_bytes()
}

/// `hpcs-pack` for the program, `hpcs-pack-results-verify` for a subcommand.
fn page_name(cmd: &Command) -> String {
    cmd.get_display_name()
        .unwrap_or_else(|| cmd.get_name())
        .to_string()
}

fn render(man: &Man, cmd: &Command, program: &Program, w: &mut Vec<u8>) -> std::io::Result<()> {
    man.render_title(w)?;
    man.render_name_section(w)?;
    man.render_synopsis_section(w)?;
    let mut roff = Roff::new();
    description(&mut roff, cmd);
    roff.to_writer(w)?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(w)?;
    }
    if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
        man.render_subcommands_section(w)?;
    }
    let top = page_name(cmd) == program.name;
    let mut roff = Roff::new();
    if top {
        exit_status(&mut roff, cmd, program.name, program.exit_table);
    } else {
        roff.control("SH", ["EXIT STATUS"]);
        roff.text([
            roman("As for "),
            bold(program.name),
            roman("(1); see EXIT STATUS there."),
        ]);
    }
    see_also(&mut roff, cmd, program.name, top);
    if !program.version.is_empty() {
        roff.control("SH", ["VERSION"]);
        roff.text([roman(format!("v{}", program.version))]);
    }
    roff.to_writer(w)
}

/// DESCRIPTION: the long about text, paragraphs filled as clap_mangen does,
/// but indented lines (usage examples) kept as written.
fn description(roff: &mut Roff, cmd: &Command) {
    let Some(about) = cmd.get_long_about().or_else(|| cmd.get_about()) else {
        return;
    };
    roff.control("SH", ["DESCRIPTION"]);
    let mut verbatim = false;
    for line in about.to_string().lines() {
        let indented = line.starts_with("  ");
        if verbatim && !indented {
            roff.control("fi", []);
            verbatim = false;
        }
        if line.trim().is_empty() {
            roff.control("PP", []);
        } else if indented {
            if !verbatim {
                roff.control("nf", []);
                verbatim = true;
            }
            roff.text([roman(line)]);
        } else {
            roff.text([roman(line)]);
        }
    }
    if verbatim {
        roff.control("fi", []);
    }
}

/// EXIT STATUS: what `--help` says after the options (`after_help`), then
/// the shared codes that apply to `program`.
fn exit_status(roff: &mut Roff, cmd: &Command, program: &str, exit_table: Option<&[(u8, &str)]>) {
    let help = cmd.get_after_long_help().or_else(|| cmd.get_after_help());
    if help.is_none() && exit_table.is_none() {
        return;
    }
    roff.control("SH", ["EXIT STATUS"]);
    if let Some(help) = help {
        roff.control("nf", []);
        for line in help.to_string().lines() {
            roff.text([roman(line)]);
        }
        roff.control("fi", []);
    }
    if let Some(table) = exit_table {
        roff.control("PP", []);
        roff.text([roman(
            "The exit codes of hpcs, shared by its programs, without those only another \
             program uses (a code never changes meaning; new failures get new numbers):",
        )]);
        roff.control("PD", ["0"]);
        for (code, meaning) in codes_for(program, table) {
            roff.control("TP", ["5"]);
            roff.text([bold(code.to_string())]);
            roff.text([roman(meaning)]);
        }
        roff.control("PD", []);
    }
}

/// The rows of the shared exit-code table that apply to `program`: a row
/// whose meaning starts with another program's name ("hpcs-mount: …") is
/// left out, and the program's own name is dropped from its rows
/// ("hpcs-mount --unmount: x" becomes "--unmount: x").
pub fn codes_for<'a>(program: &str, table: &[(u8, &'a str)]) -> Vec<(u8, &'a str)> {
    table
        .iter()
        .filter_map(|&(code, meaning)| {
            if !meaning.starts_with("hpcs-") {
                return Some((code, meaning));
            }
            let rest = meaning.strip_prefix(program)?;
            let rest = rest.strip_prefix(':').unwrap_or(rest);
            match rest.chars().next() {
                Some(' ') => Some((code, rest.trim_start())),
                _ => None, // another program whose name starts with ours
            }
        })
        .collect()
}

fn see_also(roff: &mut Roff, cmd: &Command, program: &str, top: bool) {
    let mut refs: Vec<String> = Vec::new();
    if top {
        refs.extend(
            PROGRAMS
                .iter()
                .filter(|p| **p != program)
                .map(|p| format!("{p}(1)")),
        );
        refs.push("age(1)".into());
    } else {
        refs.push(format!("{program}(1)"));
    }
    let mut line = String::new();
    for (i, r) in refs.iter().enumerate() {
        let sep = if i == 0 { "" } else { ", " };
        let _ = write!(line, "{sep}{r}");
    }
    roff.control("SH", ["SEE ALSO"]);
    roff.text([roman(line)]);
    if top {
        roff.control("PP", []);
        roff.text([roman(format!(
            "The guides (mount.md, vault.md, slurm.md, walkthrough.md) and FORMAT.md are installed \
             with the package, e.g. under /usr/share/doc/hpcs; {} --help prints the same options \
             as this page.",
            cmd.get_name()
        ))]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, ArgAction};

    fn sample() -> Command {
        Command::new("hpcs-sample")
            .version("9.9.9")
            .about("A sample")
            .after_help("Exit codes: see below.")
            .arg(
                Arg::new("frobnicate")
                    .long("frobnicate")
                    .help("Frobnicate the input")
                    .action(ArgAction::SetTrue),
            )
            .subcommand(Command::new("go").about("Go somewhere"))
            .subcommand(Command::new("secret").hide(true))
    }

    const TABLE: &[(u8, &str)] = &[
        (0, "success"),
        (3, "an input is missing"),
        (31, "hpcs-sample: the mount point is missing"),
        (35, "hpcs-sample --unmount: not a mount"),
        (16, "hpcs-pack results: incomplete"),
        (50, "hpcs-sampler: a longer name"),
    ];

    #[test]
    fn indented_description_lines_stay_as_written() {
        let cmd =
            Command::new("hpcs-x").long_about("Intro line.\n\n  hpcs-x --go\n      goes\n\nMore.");
        let page = String::from_utf8(generate(cmd, None)["man/hpcs-x.1"].clone()).unwrap();
        let desc = &page[page.find(".SH DESCRIPTION").unwrap()..];
        assert!(
            desc.starts_with(
                ".SH DESCRIPTION\nIntro line.\n.PP\n.nf\n  hpcs\\-x \\-\\-go\n      goes\n.fi\n.PP\nMore.\n"
            ),
            "{desc}"
        );
    }

    #[test]
    fn table_rows_of_other_programs_are_left_out_and_the_prefix_dropped() {
        assert_eq!(
            codes_for("hpcs-sample", TABLE),
            vec![
                (0, "success"),
                (3, "an input is missing"),
                (31, "the mount point is missing"),
                (35, "--unmount: not a mount"),
            ]
        );
        assert_eq!(
            codes_for("hpcs-pack", TABLE)[2],
            (16, "results: incomplete")
        );
    }

    #[test]
    fn pages_cover_flags_subcommands_and_exit_codes_but_not_hidden_ones() {
        let files = generate(sample(), Some(TABLE));
        let names: Vec<&str> = files.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "completions/bash/hpcs-sample",
                "completions/fish/hpcs-sample.fish",
                "completions/zsh/_hpcs-sample",
                "man/hpcs-sample-go.1",
                "man/hpcs-sample.1",
            ]
        );
        let top = String::from_utf8(files["man/hpcs-sample.1"].clone()).unwrap();
        assert!(top.contains("\n.TH hpcs-sample 1 "), "{top}");
        assert_eq!(top.matches(".ds Aq").count(), 2, "one preamble (two lines)");
        for needle in [
            "frobnicate",
            "Frobnicate the input",
            "hpcs\\-sample\\-go(1)",
            ".SH \"EXIT STATUS\"",
            "Exit codes: see below.",
            "A sample",
            "the mount point is missing",
            "hpcs\\-pack(1)",
            "v9.9.9",
        ] {
            assert!(top.contains(needle), "{needle:?} not in\n{top}");
        }
        assert!(
            !top.contains("secret") && !top.contains("longer name"),
            "{top}"
        );
        let go = String::from_utf8(files["man/hpcs-sample-go.1"].clone()).unwrap();
        assert!(
            go.contains("Go somewhere") && go.contains("hpcs\\-sample(1)"),
            "{go}"
        );
        let bash = String::from_utf8(files["completions/bash/hpcs-sample"].clone()).unwrap();
        assert!(
            bash.contains("--frobnicate") && bash.contains("complete"),
            "{bash}"
        );
    }
}
