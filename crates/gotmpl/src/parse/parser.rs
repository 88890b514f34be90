//! Recursive-descent parser that converts a token stream into an AST.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;

use super::SmolStr;
use super::lexer::{Lexer, Token, TokenKind};
use super::node::*;
use crate::FuncMap;
use crate::error::{Result, TemplateError};

/// Parse a decimal-form number token into a [`Number`].
///
/// The lexer already normalizes hex/octal/binary integer literals to decimal
/// and hex floats to their decimal-float form, so this only has to discriminate
/// between integer and float on the final text.
fn parse_number(s: &str) -> Option<Number> {
    if s.contains('.') || s.contains('e') || s.contains('E') {
        s.parse::<f64>().ok().map(Number::Float)
    } else {
        // Fall back to u64 for a non-negative literal that overflows i64
        // (Go treats it as an unsigned constant), mirroring the lexer.
        s.parse::<i64>()
            .ok()
            .map(Number::Int)
            .or_else(|| s.parse::<u64>().ok().map(Number::Uint))
    }
}

/// Recursion cap for nested `{{if}}`/`{{with}}`/`{{range}}`/`{{block}}`
/// bodies and parenthesised pipelines, to keep pathological input from
/// blowing the thread stack.
const MAX_PARSE_DEPTH: usize = 100;

/// Recursive-descent parser for Go template source.
///
/// Created from a source string via [`new`](Self::new), then invoked via
/// [`parse`](Self::parse) to produce the AST.
///
/// # Examples
///
/// ```
/// use gotmpl::parse::{Parser, Node};
///
/// let parser = Parser::new("Hello, {{.Name}}!", "{{", "}}").unwrap();
/// let (tree, defines) = parser.parse().unwrap();
/// assert_eq!(tree.nodes.len(), 3); // Text, Action, Text
/// assert!(defines.is_empty());
/// ```
pub struct Parser<'a> {
    tokens: Vec<Token<'a>>,
    pos: usize,
    source: &'a str,
    depth: usize,
    parse_name: Option<&'a str>,
    // Fork: what Go's parser checks besides the grammar. The functions an
    // action may call (`None`: any, like Go's `SkipFuncCheck`), the variables
    // in scope (Go's `Tree.vars`), and how many `{{range}}` bodies enclose
    // the current node, for `{{break}}` and `{{continue}}`.
    funcs: Option<&'a FuncMap>,
    vars: Vec<SmolStr>,
    range_depth: usize,
    right_delim: &'a str,
}

/// Fork: the block a list of nodes belongs to, named in the error when the
/// input ends inside it (Go only says `unexpected EOF`).
#[derive(Clone, Copy)]
struct Open {
    keyword: &'static str,
    line: usize,
}

/// Fork: what ended a list of nodes, as Go's `itemList` returns it: `{{end}}`
/// (consumed with its closing delimiter), `{{else}}` (the `else` keyword is
/// the next token), or the end of the input (top level only).
enum ListEnd {
    End,
    Else,
    Eof,
}

impl<'a> Parser<'a> {
    /// Create a new parser for the given template source.
    ///
    /// Runs the lexer internally to produce the token stream.
    ///
    /// # Errors
    ///
    /// Returns a [`TemplateError::Lex`] if
    /// the source contains lexical errors (unterminated strings, invalid characters, etc.).
    pub fn new(source: &'a str, left_delim: &'a str, right_delim: &'a str) -> Result<Self> {
        Self::with_name(None, source, left_delim, right_delim)
    }

    /// Like [`new`](Self::new) but tags the parser with a source name (typically
    /// a file path) that is prefixed onto lex and parse error messages, matching
    /// Go's `template: <name>:<line>:<col>: <message>` format.
    ///
    /// The name is borrowed for the parser's lifetime and only copied into the
    /// error's owned `String` when an error is actually emitted.
    pub fn with_name(
        parse_name: Option<&'a str>,
        source: &'a str,
        left_delim: &'a str,
        right_delim: &'a str,
    ) -> Result<Self> {
        let lexer = Lexer::new(source, left_delim, right_delim).with_name(parse_name);
        let tokens = lexer.tokenize()?;
        Ok(Parser {
            tokens,
            pos: 0,
            source,
            depth: 0,
            parse_name,
            funcs: None,
            vars: vec![SmolStr::new_static("$")],
            range_depth: 0,
            right_delim,
        })
    }

    /// Fork: check, as Go's parser does, that every function an action calls
    /// is in `funcs` (`function "x" not defined`, with its line). Without
    /// this, an unknown function is only found when the action runs.
    #[must_use]
    pub fn check_funcs(mut self, funcs: &'a FuncMap) -> Self {
        self.funcs = Some(funcs);
        self
    }

    fn err_name(&self) -> Option<String> {
        self.parse_name.map(String::from)
    }

    fn enter(&mut self) -> Result<()> {
        self.depth += 1;
        if self.depth > MAX_PARSE_DEPTH {
            // Fork: at the token that went too deep, where it said line 0.
            return Err(self.error(alloc::format!(
                "template nesting depth exceeded {}",
                MAX_PARSE_DEPTH
            )));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    /// Parse the entire template into an AST.
    ///
    /// Returns a tuple of:
    /// - [`ListNode`]: the top-level node sequence (the template body)
    /// - [`Vec<DefineNode>`]: any `{{define "name"}}...{{end}}` blocks found
    ///
    /// # Errors
    ///
    /// Returns a [`TemplateError::Parse`] on
    /// syntax errors (unexpected tokens, unclosed blocks, etc.).
    pub fn parse(mut self) -> Result<(ListNode, Vec<DefineNode>)> {
        let mut defines = Vec::new();
        let (list, _) = self.parse_list(&mut defines, None)?;
        Ok((list, defines))
    }

    // Token navigation
    fn peek(&self) -> &Token<'a> {
        &self.tokens[self.pos]
    }

    fn next(&mut self) -> &Token<'a> {
        let tok = &self.tokens[self.pos];
        self.pos += 1;
        tok
    }

    /// Consume the next token and return just its `(pos, line)`. Lets sites
    /// that only need the source span advance the cursor without cloning
    /// the whole `Token`.
    fn next_span(&mut self) -> (usize, usize) {
        let t = self.next();
        (t.pos, t.line)
    }

    fn expect(&mut self, kind: TokenKind) -> Result<()> {
        let idx = self.pos;
        self.pos += 1;
        let tok = &self.tokens[idx];
        if tok.kind != kind {
            let tok_kind = tok.kind.clone();
            let tok_val = tok.val.clone();
            let (line, col) = tok.line_col(self.source);
            return Err(TemplateError::Parse {
                name: self.err_name(),
                line,
                col,
                message: format!("expected {:?}, got {:?} ({:?})", kind, tok_kind, tok_val),
            });
        }
        Ok(())
    }

    fn cur_pos(&self) -> Pos {
        Pos::new(self.peek().pos, self.peek().line)
    }

    fn error(&self, msg: impl Into<String>) -> TemplateError {
        let tok = self.peek();
        let (line, col) = tok.line_col(self.source);
        TemplateError::Parse {
            name: self.err_name(),
            line,
            col,
            message: msg.into(),
        }
    }

    /// Build a `TemplateError::Parse` anchored at an arbitrary token's location.
    /// Used for errors surfaced after a token has already been consumed, where
    /// `self.peek()` no longer points at the offending token.
    fn token_error(&self, tok: &Token<'a>, msg: impl Into<String>) -> TemplateError {
        let (line, col) = tok.line_col(self.source);
        TemplateError::Parse {
            name: self.err_name(),
            line,
            col,
            message: msg.into(),
        }
    }

    /// Fork: Go's `unexpected <token> in <context>` for the next token.
    fn unexpected(&self, context: &str) -> TemplateError {
        let tok = self.peek();
        let text = match tok.kind {
            TokenKind::Eof => String::from("EOF"),
            TokenKind::RightDelim | TokenKind::RightTrimDelim => format!("{:?}", self.right_delim),
            _ => {
                let raw = &self.source[tok.pos..tok.end];
                let keyword = matches!(
                    tok.kind,
                    TokenKind::If
                        | TokenKind::Else
                        | TokenKind::End
                        | TokenKind::Range
                        | TokenKind::With
                        | TokenKind::Define
                        | TokenKind::Template
                        | TokenKind::Block
                        | TokenKind::Break
                        | TokenKind::Continue
                        | TokenKind::Dot
                        | TokenKind::Nil
                );
                // As Go's `item.String`: keywords in angle brackets, other
                // tokens quoted and cut after 10 characters.
                if keyword {
                    format!("<{raw}>")
                } else if raw.chars().count() > 10 {
                    let cut: String = raw.chars().take(10).collect();
                    format!("{cut:?}...")
                } else {
                    format!("{raw:?}")
                }
            }
        };
        self.error(format!("unexpected {text} in {context}"))
    }

    // parse_list: the core loop
    //
    // Fork: Go's `parse` (the top level, `open` is `None`) and `itemList` (a
    // block's body) in one. Only the top level may hold `{{define}}` and end
    // at EOF; a body ends at `{{end}}` or `{{else}}`, which are errors at the
    // top level. The crate used to stop at any of the three wherever it was,
    // so an unclosed `{{if}}` or a stray `{{end}}` dropped the rest of the
    // input without an error.
    fn parse_list(
        &mut self,
        defines: &mut Vec<DefineNode>,
        open: Option<Open>,
    ) -> Result<(ListNode, ListEnd)> {
        self.enter()?;
        let pos = self.cur_pos();
        let mut nodes = Vec::new();

        let end = loop {
            match self.peek().kind {
                TokenKind::Eof => match open {
                    None => break ListEnd::Eof,
                    Some(open) => {
                        return Err(self.error(format!(
                            "unexpected EOF: {{{{{}}}}} at line {} has no {{{{end}}}}",
                            open.keyword, open.line
                        )));
                    }
                },
                TokenKind::Text => {
                    let tok = self.next().clone();
                    nodes.push(Node::Text(TextNode {
                        pos: Pos::new(tok.pos, tok.line),
                        text: Arc::from(tok.val.as_ref()),
                    }));
                }
                TokenKind::LeftDelim | TokenKind::LeftTrimDelim => {
                    self.next(); // consume delimiter

                    match self.peek().kind {
                        TokenKind::End if open.is_none() => {
                            return Err(self.error("unexpected {{end}}"));
                        }
                        TokenKind::End => {
                            self.next();
                            self.expect_close_delim("end")?;
                            break ListEnd::End;
                        }
                        TokenKind::Else if open.is_none() => {
                            return Err(self.error("unexpected {{else}}"));
                        }
                        TokenKind::Else => {
                            break ListEnd::Else;
                        }
                        TokenKind::If => {
                            nodes.push(self.parse_if(defines)?);
                        }
                        TokenKind::Range => {
                            nodes.push(self.parse_range(defines)?);
                        }
                        TokenKind::With => {
                            nodes.push(self.parse_with(defines)?);
                        }
                        TokenKind::Define if open.is_none() => {
                            let def = self.parse_define(defines)?;
                            defines.push(def);
                        }
                        // Go parity: definitions are top-level only.
                        TokenKind::Define => return Err(self.unexpected("command")),
                        TokenKind::Template => {
                            nodes.push(self.parse_template_call()?);
                        }
                        TokenKind::Break | TokenKind::Continue => {
                            let pos = self.cur_pos();
                            let is_break = self.peek().kind == TokenKind::Break;
                            let keyword = if is_break { "break" } else { "continue" };
                            let tok = self.next().clone();
                            self.expect_close_delim(&format!("{{{{{keyword}}}}}"))?;
                            // Go parity: only a `{{range}}` body can be left.
                            if self.range_depth == 0 {
                                return Err(self.token_error(
                                    &tok,
                                    format!("{{{{{keyword}}}}} outside {{{{range}}}}"),
                                ));
                            }
                            nodes.push(if is_break {
                                Node::Break(pos)
                            } else {
                                Node::Continue(pos)
                            });
                        }
                        TokenKind::Block => {
                            let (node, def) = self.parse_block(defines)?;
                            nodes.push(node);
                            defines.push(def);
                        }
                        _ => {
                            let pipe = self.parse_pipeline("command", true)?;
                            self.expect_close_delim("command")?;
                            nodes.push(Node::Action(ActionNode {
                                pos: pipe.pos,
                                pipe,
                            }));
                        }
                    }
                }
                _ => {
                    self.leave();
                    return Err(self.error(format!("unexpected token: {:?}", self.peek().kind)));
                }
            }
        };

        self.leave();
        Ok((ListNode { pos, nodes }, end))
    }

    // Control structure parsers
    //
    // Fork: Go's `parseControl`. Each `{{else}}` and `{{end}}` is checked
    // against the block it closes; `{{else if}}` chains only in `{{if}}` and
    // `{{else with}}` only in `{{with}}`, and the chain's last `{{end}}` closes
    // them all (a second one is a stray `{{end}}`). Variables declared in the
    // pipeline or the body go out of scope at `{{end}}`.
    fn parse_branch(
        &mut self,
        defines: &mut Vec<DefineNode>,
        context: &'static str,
    ) -> Result<BranchNode> {
        let pos = self.cur_pos();
        let line = self.next().line;
        let vars = self.vars.len();

        let pipe = self.parse_pipeline_full(context, true, context == "range")?;
        self.expect_close_delim(context)?;

        let in_range = usize::from(context == "range");
        self.range_depth += in_range;
        let body = self.parse_list(
            defines,
            Some(Open {
                keyword: context,
                line,
            }),
        );
        self.range_depth -= in_range;
        let (body, end) = body?;

        let else_body = match end {
            ListEnd::End | ListEnd::Eof => None,
            ListEnd::Else => {
                let else_line = self.next().line;
                match self.peek().kind {
                    TokenKind::If if context == "if" => {
                        let inner_pos = self.cur_pos();
                        Some(ListNode {
                            pos: inner_pos,
                            nodes: vec![self.parse_if(defines)?],
                        })
                    }
                    TokenKind::With if context == "with" => {
                        let inner_pos = self.cur_pos();
                        Some(ListNode {
                            pos: inner_pos,
                            nodes: vec![self.parse_with(defines)?],
                        })
                    }
                    _ => {
                        self.expect_close_delim("else")?;
                        let open = Open {
                            keyword: "else",
                            line: else_line,
                        };
                        let (else_list, end) = self.parse_list(defines, Some(open))?;
                        if let ListEnd::Else = end {
                            return Err(self.error("expected end; found {{else}}"));
                        }
                        Some(else_list)
                    }
                }
            }
        };
        self.vars.truncate(vars);

        Ok(BranchNode {
            pos,
            pipe,
            body,
            else_body,
        })
    }

    fn parse_if(&mut self, defines: &mut Vec<DefineNode>) -> Result<Node> {
        Ok(Node::If(self.parse_branch(defines, "if")?))
    }

    fn parse_range(&mut self, defines: &mut Vec<DefineNode>) -> Result<Node> {
        Ok(Node::Range(self.parse_branch(defines, "range")?))
    }

    fn parse_with(&mut self, defines: &mut Vec<DefineNode>) -> Result<Node> {
        Ok(Node::With(self.parse_branch(defines, "with")?))
    }

    /// Fork: the body of a `{{define}}` or `{{block}}`, a template of its own
    /// as in Go: it sees no variable but `$` and no enclosing `{{range}}`, and
    /// ends at its `{{end}}` only.
    fn parse_definition_body(
        &mut self,
        defines: &mut Vec<DefineNode>,
        keyword: &'static str,
        line: usize,
    ) -> Result<ListNode> {
        let vars = core::mem::replace(&mut self.vars, vec![SmolStr::new_static("$")]);
        let range_depth = core::mem::take(&mut self.range_depth);
        let body = self.parse_list(defines, Some(Open { keyword, line }));
        self.vars = vars;
        self.range_depth = range_depth;
        let (body, end) = body?;
        if let ListEnd::Else = end {
            return Err(self.error(format!("unexpected {{{{else}}}} in {keyword} clause")));
        }
        Ok(body)
    }

    fn parse_define(&mut self, defines: &mut Vec<DefineNode>) -> Result<DefineNode> {
        let pos = self.cur_pos();
        let line = self.next().line;

        if self.peek().kind != TokenKind::String {
            return Err(self.unexpected("define clause"));
        }
        let name_tok = self.next().clone();
        self.expect_close_delim("define clause")?;

        let body = self.parse_definition_body(defines, "define", line)?;

        Ok(DefineNode {
            pos,
            name: SmolStr::from(name_tok.val.as_ref()),
            body,
        })
    }

    fn parse_template_call(&mut self) -> Result<Node> {
        let pos = self.cur_pos();
        self.next();

        if self.peek().kind != TokenKind::String {
            return Err(self.unexpected("template clause"));
        }
        let name_tok = self.next().clone();

        let pipe = if self.peek().kind != TokenKind::RightDelim
            && self.peek().kind != TokenKind::RightTrimDelim
        {
            Some(self.parse_pipeline("template clause", false)?)
        } else {
            None
        };

        self.expect_close_delim("template clause")?;

        Ok(Node::Template(TemplateNode {
            pos,
            name: SmolStr::from(name_tok.val.as_ref()),
            pipe,
        }))
    }

    fn parse_block(&mut self, defines: &mut Vec<DefineNode>) -> Result<(Node, DefineNode)> {
        let pos = self.cur_pos();
        let line = self.next().line;

        if self.peek().kind != TokenKind::String {
            return Err(self.unexpected("block clause"));
        }
        let name_tok = self.next().clone();

        // Fork: Go parity: the pipeline of a block is mandatory
        // (`missing value for block clause`).
        let pipe = Some(self.parse_pipeline("block clause", false)?);

        self.expect_close_delim("block clause")?;
        let body = self.parse_definition_body(defines, "block", line)?;

        let name = SmolStr::from(name_tok.val.as_ref());
        let define = DefineNode {
            pos,
            name: name.clone(),
            body: body.clone(),
        };

        let tmpl = Node::Template(TemplateNode { pos, name, pipe });

        Ok((tmpl, define))
    }

    // Pipeline and command parsing
    //
    // Fork: `context` names the pipeline in errors as Go does (`command`,
    // `if`, `range`, `with`, `parenthesized pipeline`, `template clause`,
    // `block clause`).
    fn parse_pipeline(&mut self, context: &'static str, allow_decl: bool) -> Result<PipeNode> {
        self.parse_pipeline_full(context, allow_decl, false)
    }

    fn parse_pipeline_full(
        &mut self,
        context: &'static str,
        allow_decl: bool,
        allow_multi_decl: bool,
    ) -> Result<PipeNode> {
        let pos = self.cur_pos();
        let mut decl = Vec::new();
        let mut is_assign = false;

        if allow_decl && self.peek().kind == TokenKind::Variable {
            let saved = self.pos;
            let mut vars = Vec::new();

            while self.peek().kind == TokenKind::Variable {
                let var_tok = self.next().clone();
                vars.push(SmolStr::from(var_tok.val.as_ref()));

                if self.peek().kind == TokenKind::Comma {
                    self.next();
                }
            }

            if self.peek().kind == TokenKind::Declare {
                self.next();
                decl = vars;
                is_assign = false;
            } else if self.peek().kind == TokenKind::Assign {
                self.next();
                decl = vars;
                is_assign = true;
            } else {
                self.pos = saved;
            }
            // Fork: Go parity: declared (or assigned) from here on.
            self.vars.extend(decl.iter().cloned());
        }

        if !allow_multi_decl && decl.len() > 1 {
            return Err(self.error(format!("too many declarations in {context}")));
        }
        // Go caps range declarations at two (key, value); a third is a parse
        // error ("too many declarations in range"), not a silently-dropped
        // variable. `range_loop!` only binds decl[0]/decl[1], so without this
        // a `{{range $i, $v, $w := …}}` would otherwise drop `$w` unnoticed.
        if allow_multi_decl && decl.len() > 2 {
            return Err(self.error("too many declarations in range"));
        }

        // Fork: Go's `pipeline` loop. The pipeline ends at `}}`, or at `)` when
        // parenthesized; a `|` may end it (`{{.X |}}` is `{{.X}}` in Go); it
        // must hold a command, and only the first command may start with a
        // constant (`non executable command in pipeline stage 2`).
        let paren = context == "parenthesized pipeline";
        let mut commands = Vec::new();
        loop {
            match self.peek().kind {
                TokenKind::RightDelim | TokenKind::RightTrimDelim if !paren => break,
                TokenKind::RightParen if paren => break,
                TokenKind::RightDelim | TokenKind::RightTrimDelim => {
                    return Err(self.error("unclosed left paren"));
                }
                TokenKind::RightParen => return Err(self.error("unexpected right paren")),
                TokenKind::Dot
                | TokenKind::Field
                | TokenKind::Variable
                | TokenKind::Identifier
                | TokenKind::String
                | TokenKind::Number
                | TokenKind::Bool
                | TokenKind::Nil
                | TokenKind::Char
                | TokenKind::LeftParen => {
                    commands.push(self.parse_command()?);
                    if self.peek().kind == TokenKind::Pipe {
                        self.next();
                    }
                }
                _ => return Err(self.unexpected(context)),
            }
        }
        if commands.is_empty() {
            return Err(self.error(format!("missing value for {context}")));
        }
        for (stage, command) in commands.iter().enumerate().skip(1) {
            if let Some(
                Expr::Bool(p, _)
                | Expr::Dot(p)
                | Expr::Nil(p)
                | Expr::Number(p, _)
                | Expr::String(p, _),
            ) = command.args.first()
            {
                return Err(TemplateError::Parse {
                    name: self.err_name(),
                    line: p.line,
                    col: crate::col_for_offset(self.source, p.offset),
                    message: format!("non executable command in pipeline stage {}", stage + 1),
                });
            }
        }

        Ok(PipeNode {
            pos,
            decl,
            commands,
            is_assign,
        })
    }

    fn parse_command(&mut self) -> Result<CommandNode> {
        let pos = self.cur_pos();
        let mut args = Vec::new();

        loop {
            let operand_start = self.peek().pos;
            match self.peek().kind {
                TokenKind::RightDelim
                | TokenKind::RightTrimDelim
                | TokenKind::Pipe
                | TokenKind::Eof => break,

                TokenKind::End | TokenKind::Else => break,

                TokenKind::LeftParen => {
                    let paren_pos = self.cur_pos();
                    self.next();
                    self.enter()?;
                    let pipe_result = self.parse_pipeline("parenthesized pipeline", false);
                    self.leave();
                    let pipe = pipe_result?;
                    self.expect(TokenKind::RightParen)?;
                    let chain_end = self.tokens[self.pos - 1].pos + 1;
                    let mut fields = Vec::new();
                    self.extend_field_chain(chain_end, &mut fields);
                    if fields.is_empty() {
                        args.push(Expr::Pipe(paren_pos, pipe));
                    } else {
                        args.push(Expr::Chain(
                            paren_pos,
                            Box::new(Expr::Pipe(paren_pos, pipe)),
                            fields,
                        ));
                    }
                }

                // Fork: no field chain after `.`: Go rejects `..E` (`unexpected
                // . after term "."`), where it used to mean `.E`.
                TokenKind::Dot => {
                    let (tok_pos, tok_line) = self.next_span();
                    args.push(Expr::Dot(Pos::new(tok_pos, tok_line)));
                }

                TokenKind::Field => {
                    let tok = self.next().clone();
                    let mut fields = Vec::new();
                    Self::push_field_chain(&tok.val, &mut fields);
                    self.extend_field_chain(tok.pos + tok.val.len(), &mut fields);
                    args.push(Expr::Field(Pos::new(tok.pos, tok.line), fields));
                }

                TokenKind::Variable => {
                    let tok = self.next().clone();
                    // Fork: Go parity: a variable must be in scope.
                    if !self.vars.iter().any(|v| v.as_str() == tok.val.as_ref()) {
                        return Err(
                            self.token_error(&tok, format!("undefined variable {:?}", tok.val))
                        );
                    }
                    let mut fields = Vec::new();
                    self.extend_field_chain(tok.pos + tok.val.len(), &mut fields);
                    args.push(Expr::Variable(
                        Pos::new(tok.pos, tok.line),
                        SmolStr::from(tok.val.as_ref()),
                        fields,
                    ));
                }

                TokenKind::Identifier => {
                    let tok = self.next().clone();
                    // Fork: Go parity: an unknown function is a parse error
                    // with its line, not an error when the action runs.
                    if self
                        .funcs
                        .is_some_and(|f| !f.contains_key(tok.val.as_ref()))
                    {
                        return Err(
                            self.token_error(&tok, format!("function {:?} not defined", tok.val))
                        );
                    }
                    let mut fields = Vec::new();
                    self.extend_field_chain(tok.pos + tok.val.len(), &mut fields);
                    let ident_pos = Pos::new(tok.pos, tok.line);
                    let name = SmolStr::from(tok.val.as_ref());
                    if fields.is_empty() {
                        args.push(Expr::Identifier(ident_pos, name));
                    } else {
                        args.push(Expr::Chain(
                            ident_pos,
                            Box::new(Expr::Identifier(ident_pos, name)),
                            fields,
                        ));
                    }
                }

                TokenKind::String => {
                    let tok = self.next().clone();
                    args.push(Expr::String(
                        Pos::new(tok.pos, tok.line),
                        Arc::from(tok.val.as_ref()),
                    ));
                }
                TokenKind::Number => {
                    let tok = self.next().clone();
                    let num = match tok.num {
                        Some(n) => n,
                        None => parse_number(&tok.val).ok_or_else(|| {
                            self.token_error(&tok, format!("invalid number: {}", tok.val))
                        })?,
                    };
                    args.push(Expr::Number(Pos::new(tok.pos, tok.line), num));
                }
                TokenKind::Bool => {
                    let t = self.next();
                    args.push(Expr::Bool(Pos::new(t.pos, t.line), t.val == "true"));
                }
                TokenKind::Nil => {
                    let (pos, line) = self.next_span();
                    args.push(Expr::Nil(Pos::new(pos, line)));
                }
                TokenKind::Char => {
                    let tok = self.next().clone();
                    let num = tok.num.ok_or_else(|| {
                        self.token_error(&tok, format!("invalid char literal: {}", tok.val))
                    })?;
                    args.push(Expr::Number(Pos::new(tok.pos, tok.line), num));
                }

                _ => break,
            }

            // Fork: Go's `command`: an operand ends the command at `}}`, `)`
            // or `|`, or is followed by a space and the next operand. The
            // crate used to take `printf 3`x`` as two operands and
            // `"a".Field` as a string and a field.
            let last_end = self.tokens[self.pos - 1].end;
            let next = self.peek();
            let touches = next.pos == last_end;
            match next.kind {
                TokenKind::RightDelim
                | TokenKind::RightTrimDelim
                | TokenKind::RightParen
                | TokenKind::Pipe
                | TokenKind::Eof => break,
                TokenKind::Field if touches => {
                    let term = &self.source[operand_start..last_end];
                    return Err(self.error(format!("unexpected . after term {term:?}")));
                }
                _ if touches => return Err(self.unexpected("operand")),
                TokenKind::Dot
                | TokenKind::Field
                | TokenKind::Variable
                | TokenKind::Identifier
                | TokenKind::String
                | TokenKind::Number
                | TokenKind::Bool
                | TokenKind::Nil
                | TokenKind::Char
                | TokenKind::LeftParen => {}
                _ => return Err(self.unexpected("operand")),
            }
        }

        if args.is_empty() {
            return Err(self.error("empty command"));
        }

        Ok(CommandNode { pos, args })
    }

    fn push_field_chain(field_str: &str, out: &mut Vec<SmolStr>) {
        out.extend(
            field_str
                .split('.')
                .filter(|s| !s.is_empty())
                .map(SmolStr::from),
        );
    }

    /// Consume any `Field` tokens that immediately follow a chain's tail
    /// (no whitespace between them) and append their components to `fields`.
    fn extend_field_chain(&mut self, mut chain_end: usize, fields: &mut Vec<SmolStr>) {
        while self.peek().kind == TokenKind::Field && self.peek().pos == chain_end {
            let ftok = self.next().clone();
            chain_end = ftok.pos + ftok.val.len();
            Self::push_field_chain(&ftok.val, fields);
        }
    }

    // Delimiter helpers
    //
    // Fork: Go's `unexpected <token> in <context>` where it said `expected
    // closing delimiter, got <TokenKind>`.
    fn expect_close_delim(&mut self, context: &str) -> Result<()> {
        match self.peek().kind {
            TokenKind::RightDelim | TokenKind::RightTrimDelim => {
                self.next();
                Ok(())
            }
            _ => Err(self.unexpected(context)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(input: &str) -> (ListNode, Vec<DefineNode>) {
        Parser::new(input, "{{", "}}").unwrap().parse().unwrap()
    }

    #[test]
    fn test_parse_text() {
        let (list, _) = parse("hello world");
        assert_eq!(list.nodes.len(), 1);
        match &list.nodes[0] {
            Node::Text(t) => assert_eq!(&*t.text, "hello world"),
            _ => panic!("expected Text node"),
        }
    }

    #[test]
    fn test_parse_action() {
        let (list, _) = parse("{{.Name}}");
        assert_eq!(list.nodes.len(), 1);
        match &list.nodes[0] {
            Node::Action(a) => {
                assert_eq!(a.pipe.commands.len(), 1);
                assert_eq!(a.pipe.commands[0].args.len(), 1);
            }
            _ => panic!("expected Action node"),
        }
    }

    #[test]
    fn test_parse_if() {
        let (list, _) = parse("{{if .OK}}yes{{end}}");
        assert_eq!(list.nodes.len(), 1);
        match &list.nodes[0] {
            Node::If(branch) => {
                assert_eq!(branch.body.nodes.len(), 1);
                assert!(branch.else_body.is_none());
            }
            _ => panic!("expected If node"),
        }
    }

    #[test]
    fn test_parse_if_else() {
        let (list, _) = parse("{{if .OK}}yes{{else}}no{{end}}");
        match &list.nodes[0] {
            Node::If(branch) => {
                assert!(branch.else_body.is_some());
            }
            _ => panic!("expected If node"),
        }
    }

    #[test]
    fn test_parse_range() {
        let (list, _) = parse("{{range .Items}}{{.}}{{end}}");
        match &list.nodes[0] {
            Node::Range(_) => {}
            _ => panic!("expected Range node"),
        }
    }

    #[test]
    fn test_parse_pipeline() {
        let (list, _) = parse("{{.Name | len}}");
        match &list.nodes[0] {
            Node::Action(a) => {
                assert_eq!(a.pipe.commands.len(), 2);
            }
            _ => panic!("expected Action with pipeline"),
        }
    }

    #[test]
    fn test_parse_define() {
        let (_, defines) = parse("{{define \"header\"}}Header{{end}}");
        assert_eq!(defines.len(), 1);
        assert_eq!(&*defines[0].name, "header");
    }

    #[test]
    fn test_parse_template_call() {
        let (list, _) = parse("{{template \"header\" .}}");
        match &list.nodes[0] {
            Node::Template(t) => {
                assert_eq!(&*t.name, "header");
                assert!(t.pipe.is_some());
            }
            _ => panic!("expected Template node"),
        }
    }

    #[test]
    fn test_parse_number_helper_discriminates_int_and_float() {
        assert_eq!(parse_number("42"), Some(Number::Int(42)));
        assert_eq!(parse_number("-7"), Some(Number::Int(-7)));
        assert_eq!(parse_number("1.5"), Some(Number::Float(1.5)));
        assert_eq!(parse_number("2e3"), Some(Number::Float(2000.0)));
        assert_eq!(parse_number("2E-1"), Some(Number::Float(0.2)));
        assert!(parse_number("not a number").is_none());
    }

    #[test]
    fn test_parse_number_expr_carries_parsed_variant() {
        // Integer literal -> Expr::Number(_, Number::Int(_))
        let (list, _) = parse("{{42}}");
        match &list.nodes[0] {
            Node::Action(a) => match &a.pipe.commands[0].args[0] {
                Expr::Number(_, Number::Int(42)) => {}
                other => panic!("expected Number::Int(42), got {:?}", other),
            },
            _ => panic!("expected Action node"),
        }

        // Float literal -> Expr::Number(_, Number::Float(_))
        let (list, _) = parse("{{2.5}}");
        match &list.nodes[0] {
            Node::Action(a) => match &a.pipe.commands[0].args[0] {
                Expr::Number(_, Number::Float(f)) if (*f - 2.5).abs() < 1e-9 => {}
                other => panic!("expected Number::Float(2.5), got {:?}", other),
            },
            _ => panic!("expected Action node"),
        }

        // Hex literal is normalized to decimal by the lexer, still an Int.
        let (list, _) = parse("{{0xff}}");
        match &list.nodes[0] {
            Node::Action(a) => match &a.pipe.commands[0].args[0] {
                Expr::Number(_, Number::Int(255)) => {}
                other => panic!("expected Number::Int(255), got {:?}", other),
            },
            _ => panic!("expected Action node"),
        }

        // Char literal is emitted as its Unicode code point (also an Int).
        let (list, _) = parse("{{'A'}}");
        match &list.nodes[0] {
            Node::Action(a) => match &a.pipe.commands[0].args[0] {
                Expr::Number(_, Number::Int(65)) => {}
                other => panic!("expected Number::Int(65), got {:?}", other),
            },
            _ => panic!("expected Action node"),
        }
    }

    fn parse_error(src: &str) -> Option<String> {
        crate::Template::new("t")
            .parse(src)
            .err()
            .map(|e| e.to_string())
    }

    /// Fork: every parse error Go's text/template reports (the cases of its
    /// parse_test.go and more), with the line Go gives and the column. Go's
    /// own message is kept where it has one; an unclosed block also names
    /// where it opened.
    #[test]
    fn test_parse_errors_match_go() {
        let cases: &[(&str, &str)] = &[
            (
                "a {{ if .X }} b\n",
                "template: t:2:1: unexpected EOF: {{if}} at line 1 has no {{end}}",
            ),
            (
                "l1\n{{ with .X }}\nl3\n",
                "template: t:4:1: unexpected EOF: {{with}} at line 2 has no {{end}}",
            ),
            (
                "{{ range .X }}",
                "template: t:1:15: unexpected EOF: {{range}} at line 1 has no {{end}}",
            ),
            (
                "{{ if .X }}{{ else }}",
                "template: t:1:22: unexpected EOF: {{else}} at line 1 has no {{end}}",
            ),
            (
                "l1\n{{ define \"x\" }}\nbody\n",
                "template: t:4:1: unexpected EOF: {{define}} at line 2 has no {{end}}",
            ),
            (
                "{{ block \"a\" . }}x",
                "template: t:1:19: unexpected EOF: {{block}} at line 1 has no {{end}}",
            ),
            (
                "{{ if .X }}a{{ else if .Y }}b{{ else }}c",
                "template: t:1:41: unexpected EOF: {{else}} at line 1 has no {{end}}",
            ),
            ("a\n{{ end }}\nb\n", "template: t:2:4: unexpected {{end}}"),
            ("{{ else }}", "template: t:1:4: unexpected {{else}}"),
            ("{{ else if .X }}", "template: t:1:4: unexpected {{else}}"),
            (
                "{{ if .X }}a{{ end }}{{ else }}",
                "template: t:1:25: unexpected {{else}}",
            ),
            (
                "{{ if .X }}a{{ else if .Y }}b{{ end }}{{ end }}",
                "template: t:1:42: unexpected {{end}}",
            ),
            (
                "{{ with .X }}a{{ else with .Y }}b{{ end }}{{ end }}",
                "template: t:1:46: unexpected {{end}}",
            ),
            (
                "{{ if .X }}1{{ else }}2{{ else }}3{{ end }}",
                "template: t:1:27: expected end; found {{else}}",
            ),
            (
                "{{ define \"a\" }}x{{ else }}y{{ end }}",
                "template: t:1:21: unexpected {{else}} in define clause",
            ),
            (
                "{{ with .X }}{{ else if .Y }}{{ end }}",
                "template: t:1:22: unexpected <if> in else",
            ),
            (
                "{{ range .X }}{{ else with .Y }}{{ end }}",
                "template: t:1:23: unexpected <with> in else",
            ),
            (
                "{{ if .X }}{{ define \"y\" }}{{ end }}{{ end }}",
                "template: t:1:15: unexpected <define> in command",
            ),
            ("{{ end x }}", "template: t:1:4: unexpected {{end}}"),
            (
                "{{ if .X }}a{{ else x }}b{{ end }}",
                "template: t:1:21: unexpected \"x\" in else",
            ),
            (
                "{{ break }}",
                "template: t:1:4: {{break}} outside {{range}}",
            ),
            (
                "{{ range . }}{{ else }}{{ continue }}{{ end }}",
                "template: t:1:27: {{continue}} outside {{range}}",
            ),
            (
                "{{ range . }}{{ block \"b\" . }}{{ break }}{{ end }}{{ end }}",
                "template: t:1:34: {{break}} outside {{range}}",
            ),
            (
                "{{ range . }}{{ break 2 }}{{ end }}",
                "template: t:1:23: unexpected \"2\" in {{break}}",
            ),
            (
                "l1\n{{ .X | defalt \"x\" }}",
                "template: t:2:9: function \"defalt\" not defined",
            ),
            ("{{ $x }}", "template: t:1:4: undefined variable \"$x\""),
            (
                "{{ with $x := 1 }}{{ end }}{{ $x }}",
                "template: t:1:31: undefined variable \"$x\"",
            ),
            (
                "{{ define \"a\" }}{{ $x }}{{ end }}{{ $x := 1 }}",
                "template: t:1:20: undefined variable \"$x\"",
            ),
            ("{{ }}", "template: t:1:6: missing value for command"),
            ("{{ if }}{{ end }}", "template: t:1:9: missing value for if"),
            (
                "{{ range }}{{ end }}",
                "template: t:1:12: missing value for range",
            ),
            (
                "{{ with }}{{ end }}",
                "template: t:1:11: missing value for with",
            ),
            ("{{ $x := }}", "template: t:1:12: missing value for command"),
            (
                "{{ printf ( ) }}",
                "template: t:1:13: missing value for parenthesized pipeline",
            ),
            (
                "{{ block \"a\" }}x{{ end }}",
                "template: t:1:16: missing value for block clause",
            ),
            (
                "{{ 12 | . }}",
                "template: t:1:9: non executable command in pipeline stage 2",
            ),
            (
                "{{ . | printf | \"s\" }}",
                "template: t:1:17: non executable command in pipeline stage 3",
            ),
            ("{{ | .X }}", "template: t:1:4: unexpected \"|\" in command"),
            (
                "{{ .X | | .Y }}",
                "template: t:1:9: unexpected \"|\" in command",
            ),
            (
                "{{ with $a, $b := 1 }}{{ end }}",
                "template: t:1:19: too many declarations in with",
            ),
            (
                "{{ range $a, $b, $c := . }}{{ end }}",
                "template: t:1:24: too many declarations in range",
            ),
            (
                "{{ template .X }}",
                "template: t:1:13: unexpected \".X\" in template clause",
            ),
            (
                "{{ template }}",
                "template: t:1:15: unexpected \"}}\" in template clause",
            ),
            (
                "{{ define a }}{{ end }}",
                "template: t:1:11: unexpected \"a\" in define clause",
            ),
            (
                "{{ printf 3, 4 }}",
                "template: t:1:12: unexpected \",\" in operand",
            ),
            (
                "{{ printf 3`x` }}",
                "template: t:1:12: unexpected \"`x`\" in operand",
            ),
            (
                "{{ printf `x`. }}",
                "template: t:1:14: unexpected <.> in operand",
            ),
            (
                "{{ \"a\".B }}",
                "template: t:1:7: unexpected . after term \"\\\"a\\\"\"",
            ),
            (
                "{{ true.B }}",
                "template: t:1:8: unexpected . after term \"true\"",
            ),
            (
                "{{ nil.B }}",
                "template: t:1:7: unexpected . after term \"nil\"",
            ),
            (
                "{{ ..B }}",
                "template: t:1:5: unexpected . after term \".\"",
            ),
            (
                "{{ 1.2.3 }}",
                "template: t:1:7: unexpected \".3\" in operand",
            ),
            (
                "{{ .X := 1 }}",
                "template: t:1:7: unexpected \":=\" in operand",
            ),
            ("{{ .X (1 2 }}", "template: t:1:14: unclosed left paren"),
            ("{{ .X 1 ) }}", "template: t:1:9: unexpected right paren"),
            ("{{ (1 }}", "template: t:1:9: unclosed left paren"),
            (
                "line1\n{{ .X\n\n",
                "template: t:4:1: unclosed action started at t:2",
            ),
            ("{{ .X", "template: t:1:6: unclosed action"),
            ("{{/* x", "template: t:1:3: unclosed comment"),
            ("{{/*\nx\n}}", "template: t:1:3: unclosed comment"),
            (
                "{{/* x */ .X }}",
                "template: t:1:11: comment ends before closing delimiter",
            ),
            ("{{ /* x */ }}", "template: t:1:4: bad character U+002F '/'"),
            (
                "{{/* x */ }}",
                "template: t:1:11: comment ends before closing delimiter",
            ),
            ("{{ \"a }}", "template: t:1:9: unterminated quoted string"),
            (
                "{{ `a }}",
                "template: t:1:9: unterminated raw quoted string",
            ),
            (
                "{{ 'a }}",
                "template: t:1:7: unterminated character constant",
            ),
            (
                "{{ \"a\nb\" }}",
                "template: t:1:6: unterminated quoted string",
            ),
            (
                "{{ \"\\q\" }}",
                "template: t:1:8: invalid syntax: unknown escape sequence \\q",
            ),
            (
                "{{ \"\\x4\" }}",
                "template: t:1:9: invalid syntax: \\x must be followed by 2 hex digits",
            ),
            (
                "{{ \"\\ud800\" }}",
                "template: t:1:12: invalid syntax: \\ud800 is not a valid code point",
            ),
            (
                "{{ '\\q' }}",
                "template: t:1:7: invalid syntax: unknown escape sequence \\q",
            ),
            ("{{ a# }}", "template: t:1:5: bad character U+0023 '#'"),
            ("{{ 0xi }}", "template: t:1:6: invalid hex number"),
            ("{{ 1_ }}", "template: t:1:6: bad number syntax: \"1_\""),
            ("{{ 1__2 }}", "template: t:1:8: bad number syntax: \"1__2\""),
        ];
        for (src, want) in cases {
            assert_eq!(parse_error(src).as_deref(), Some(*want), "{src:?}");
        }
    }

    /// Fork: without a name, the start of an unclosed action is a line.
    #[test]
    fn test_unclosed_action_without_a_name() {
        let err = crate::Template::new("").parse("a\n{{ .X\n").err();
        assert_eq!(
            err.map(|e| e.to_string()).as_deref(),
            Some("template: 3:1: unclosed action started at line 2")
        );
    }

    /// Fork: what Go accepts still parses.
    #[test]
    fn test_go_accepts_these() {
        for src in [
            "{{ if .X }}a{{ else if .Y }}b{{ else }}c{{ end }}",
            "{{ with .X }}a{{ else with .Y }}b{{ end }}",
            "{{ range $i, $v := . }}{{ $i }}{{ break }}{{ continue }}{{ end }}",
            "{{ .X | }}",
            "{{ $x := 1 }}{{ if true }}{{ $x = 2 }}{{ end }}{{ $x }}",
            "{{ if $x := 1 }}{{ else }}{{ $x }}{{ end }}",
            "{{ define \"a\" }}{{ $ }}{{ end }}{{ template \"a\" }}",
            "{{- /* c */ -}}",
            "{{/* c */}}",
            "{{ (.X).Y }}",
            "{{ $.X.Y }}",
            "{{ printf \"%d\" (len .) }}",
            "{{ 1_000 }} {{ 0x_1F }} {{ \"\\u00e9\\x41\\101\" }}",
        ] {
            assert_eq!(parse_error(src), None, "{src:?}");
        }
    }

    /// Fork: a stray `{{end}}` or an unclosed block used to end the
    /// template there, dropping the rest without an error.
    #[test]
    fn test_nothing_after_a_block_is_dropped() {
        let (list, _) = parse("{{if .X}}a{{end}}b{{range .Y}}c{{else}}d{{end}}e");
        assert_eq!(list.nodes.len(), 4);
        assert!(parse_error("{{if .X}}a{{end}}{{end}}b").is_some());
        assert!(parse_error("a {{if .X}} b").is_some());
    }
}
