//! How a command line is split into words: `exec: "..."` and `-render`'s COMMAND.

/// Splits a command line as a POSIX shell splits words, without expanding anything: blanks
/// separate words; `'...'` is literal; in `"..."` a backslash escapes `"`, `\`, `$`, `` ` `` and
/// a newline; outside quotes it escapes any character. `#` and the other shell operators are
/// ordinary characters, since no shell runs.
pub fn split(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' | '\r' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err("has an unterminated single quote".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some('\n') => {}
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err("has an unterminated double quote".into()),
                        },
                        Some(c) => word.push(c),
                        None => return Err("has an unterminated double quote".into()),
                    }
                }
            }
            '\\' => match chars.next() {
                Some('\n') => {}
                Some(c) => {
                    in_word = true;
                    word.push(c);
                }
                None => return Err("ends with a lone backslash".into()),
            },
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// How ContainerPilot split every exec string: on single spaces, quotes kept as text. pilot
/// splits this way only a string whose quotes do not close (which `split` refuses), so that a
/// config ContainerPilot ran still runs the same command.
pub fn split_on_spaces(line: &str) -> Vec<String> {
    line.trim().split(' ').map(str::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_strings_split_with_shell_quoting() {
        let cases: &[(&str, &[&str])] = &[
            ("/bin/app", &["/bin/app"]),
            (
                "  node   server.js  -p 8000 ",
                &["node", "server.js", "-p", "8000"],
            ),
            ("sh -c 'echo a b'", &["sh", "-c", "echo a b"]),
            (r#"echo "a \"b\" \$c \x""#, &["echo", r#"a "b" $c \x"#]),
            (r"echo a\ b", &["echo", "a b"]),
            ("echo '' x", &["echo", "", "x"]),
            ("echo it''s", &["echo", "its"]),
            (
                "consul info | grep leader",
                &["consul", "info", "|", "grep", "leader"],
            ),
            (
                "echo # not a comment",
                &["echo", "#", "not", "a", "comment"],
            ),
            ("tab\tseparated\nlines", &["tab", "separated", "lines"]),
            ("a\\\nb", &["ab"]),
        ];
        for (line, want) in cases {
            assert_eq!(split(line).unwrap(), *want, "{line}");
        }
        assert_eq!(
            split("echo 'x"),
            Err("has an unterminated single quote".into())
        );
        assert_eq!(
            split("echo \"x"),
            Err("has an unterminated double quote".into())
        );
        assert_eq!(split("echo x\\"), Err("ends with a lone backslash".into()));
    }

    #[test]
    fn containerpilot_split_keeps_quotes() {
        assert_eq!(
            split_on_spaces(" curl --header \"HOST: a b "),
            ["curl", "--header", "\"HOST:", "a", "b"]
        );
    }
}
