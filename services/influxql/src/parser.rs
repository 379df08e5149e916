//! Recursive descent over the scanner's tokens, one token of lookahead.

use crate::ast::*;
use crate::error::ParseError;
use crate::lexer::{self, Token, TokenKind};

/// How deeply parentheses, calls and subqueries may nest. The parser recurses once per level;
/// the limit keeps hostile input from overflowing the stack.
pub const MAX_NESTING: usize = 100;

/// What an operand may start with, in InfluxDB's wording.
const EXPECTED_OPERAND: &[&str] = &["identifier", "string", "number", "bool"];

pub(crate) struct Parser<'a> {
    src: &'a str,
    /// Byte offset where the next token is scanned from.
    pos: usize,
    peeked: Option<Token>,
    /// Expressions and SELECTs currently being parsed, inside each other.
    depth: usize,
}

type Result<T> = std::result::Result<T, ParseError>;

impl<'a> Parser<'a> {
    pub(crate) fn new(src: &'a str) -> Self {
        Self {
            src,
            pos: 0,
            peeked: None,
            depth: 0,
        }
    }

    // --- token plumbing -------------------------------------------------------------------

    fn peek(&mut self) -> Result<&Token> {
        let token = match self.peeked.take() {
            Some(token) => token,
            None => lexer::next_token(self.src, self.pos)?,
        };
        Ok(self.peeked.insert(token))
    }

    fn peek_kind(&mut self) -> Result<&TokenKind> {
        Ok(&self.peek()?.kind)
    }

    fn next(&mut self) -> Result<Token> {
        let token = match self.peeked.take() {
            Some(t) => t,
            None => lexer::next_token(self.src, self.pos)?,
        };
        self.pos = token.end;
        Ok(token)
    }

    fn error(&self, token: &Token, expected: &[&str]) -> ParseError {
        ParseError::expected(self.src, token.start, token.describe(self.src), expected)
    }

    /// Consumes the next token if it is `kind`.
    fn accept(&mut self, kind: &TokenKind) -> Result<bool> {
        if self.peek_kind()? == kind {
            self.next()?;
            return Ok(true);
        }
        Ok(false)
    }

    fn expect(&mut self, kind: &TokenKind, name: &str) -> Result<()> {
        let token = self.next()?;
        if &token.kind == kind {
            Ok(())
        } else {
            Err(self.error(&token, &[name]))
        }
    }

    fn accept_keyword(&mut self, keyword: &str) -> Result<bool> {
        self.accept(&TokenKind::Keyword(lexer::keyword(keyword).unwrap_or("")))
    }

    fn expect_keyword(&mut self, keyword: &'static str) -> Result<()> {
        let token = self.next()?;
        if token.kind == TokenKind::Keyword(keyword) {
            Ok(())
        } else {
            Err(self.error(&token, &[keyword]))
        }
    }

    /// True if the next token is the bare identifier `word` (any case), e.g. `fill`, `tz`.
    fn peek_word(&mut self, word: &str) -> Result<bool> {
        Ok(matches!(self.peek_kind()?, TokenKind::Ident(w) if w.eq_ignore_ascii_case(word)))
    }

    fn identifier(&mut self) -> Result<String> {
        let token = self.next()?;
        match token.kind {
            TokenKind::Ident(name) | TokenKind::QuotedIdent(name) => Ok(name),
            _ => Err(self.error(&token, &["identifier"])),
        }
    }

    /// A regex literal if the next token is `/`, rescanning from it.
    fn accept_regex(&mut self) -> Result<Option<String>> {
        let token = self.peek()?;
        if token.kind != TokenKind::Div {
            return Ok(None);
        }
        let start = token.start;
        let (pattern, end) = lexer::scan_regex(self.src, start)?;
        self.peeked = None;
        self.pos = end;
        Ok(Some(pattern))
    }

    fn expect_regex(&mut self) -> Result<String> {
        match self.accept_regex()? {
            Some(re) => Ok(re),
            None => {
                let token = self.next()?;
                Err(self.error(&token, &["regex"]))
            }
        }
    }

    fn unsigned(&mut self) -> Result<u64> {
        let token = self.next()?;
        if token.kind == TokenKind::Integer {
            let text = token.describe(self.src);
            if let Ok(n) = text.parse() {
                return Ok(n);
            }
            return Err(ParseError::at(
                self.src,
                token.start,
                format!("integer {text} out of range"),
            ));
        }
        Err(self.error(&token, &["integer"]))
    }

    fn duration(&mut self) -> Result<i64> {
        let token = self.next()?;
        match token.kind {
            TokenKind::Duration(d) => Ok(d),
            // InfluxDB reads an argument as any expression, so the end of input is reported
            // as a missing operand.
            TokenKind::Eof => Err(self.error(&token, EXPECTED_OPERAND)),
            _ => Err(self.error(&token, &["duration"])),
        }
    }

    /// A duration with an optional leading minus.
    fn signed_duration(&mut self) -> Result<i64> {
        if self.accept(&TokenKind::Sub)? {
            return Ok(-self.duration()?);
        }
        self.duration()
    }

    // --- statements -------------------------------------------------------------------------

    /// Statements separated by `;` (empty ones allowed) up to the end of input.
    pub(crate) fn statements(&mut self) -> Result<Vec<Statement>> {
        let mut statements = Vec::new();
        let mut after_semicolon = true;
        loop {
            match self.peek_kind()? {
                TokenKind::Eof => return Ok(statements),
                TokenKind::Semicolon => {
                    self.next()?;
                    after_semicolon = true;
                }
                _ if !after_semicolon => {
                    let token = self.next()?;
                    return Err(self.error(&token, &[";"]));
                }
                _ => {
                    statements.push(self.statement()?);
                    after_semicolon = false;
                }
            }
        }
    }

    /// Fails unless the input is used up.
    pub(crate) fn end(&mut self) -> Result<()> {
        let token = self.next()?;
        if token.kind != TokenKind::Eof {
            return Err(self.error(&token, &["EOF"]));
        }
        Ok(())
    }

    /// Exactly one statement, optionally followed by `;`.
    pub(crate) fn single_statement(&mut self) -> Result<Statement> {
        let statement = self.statement()?;
        while self.accept(&TokenKind::Semicolon)? {}
        self.end()?;
        Ok(statement)
    }

    fn statement(&mut self) -> Result<Statement> {
        let token = self.next()?;
        match token.kind {
            TokenKind::Keyword("SELECT") => Ok(Statement::Select(Box::new(self.select()?))),
            TokenKind::Keyword("SHOW") => self.show(),
            TokenKind::Keyword("CREATE") => self.create(),
            _ => Err(self.error(&token, &["SELECT", "SHOW", "CREATE"])),
        }
    }

    /// Runs `parse` one nesting level deeper, failing past [`MAX_NESTING`].
    fn nested<T>(&mut self, parse: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        if self.depth >= MAX_NESTING {
            return Err(ParseError::at(
                self.src,
                self.pos,
                format!("query nested too deeply (more than {MAX_NESTING} levels)"),
            ));
        }
        self.depth += 1;
        let result = parse(self);
        self.depth -= 1;
        result
    }

    /// The body of a SELECT, after the `SELECT` keyword.
    fn select(&mut self) -> Result<SelectStatement> {
        self.nested(Self::select_body)
    }

    fn select_body(&mut self) -> Result<SelectStatement> {
        let fields = self.fields()?;
        let token = self.next()?;
        match token.kind {
            TokenKind::Keyword("FROM") => {}
            TokenKind::Keyword("INTO") => {
                return Err(ParseError::at(
                    self.src,
                    token.start,
                    "SELECT INTO is not supported",
                ));
            }
            _ => return Err(self.error(&token, &["FROM"])),
        }
        let sources = self.sources()?;
        let condition = self.where_clause()?;
        let dimensions = self.group_by()?;
        let fill = self.fill()?;
        let order_by = self.order_by()?;
        let limit = self.count_clause("LIMIT")?;
        let offset = self.count_clause("OFFSET")?;
        let series_limit = self.count_clause("SLIMIT")?;
        let series_offset = self.count_clause("SOFFSET")?;
        let timezone = self.timezone()?;
        Ok(SelectStatement {
            fields,
            sources,
            condition,
            dimensions,
            fill,
            order_by,
            limit,
            offset,
            series_limit,
            series_offset,
            timezone,
        })
    }

    fn fields(&mut self) -> Result<Vec<Field>> {
        let mut fields = Vec::new();
        loop {
            let expr = self.expr()?;
            let alias = if self.accept_keyword("AS")? {
                Some(self.identifier()?)
            } else {
                None
            };
            fields.push(Field { expr, alias });
            if !self.accept(&TokenKind::Comma)? {
                return Ok(fields);
            }
        }
    }

    fn sources(&mut self) -> Result<Vec<Source>> {
        let mut sources = Vec::new();
        loop {
            if self.accept(&TokenKind::LParen)? {
                self.expect_keyword("SELECT")?;
                let subquery = self.select()?;
                self.expect(&TokenKind::RParen, ")")?;
                sources.push(Source::Subquery(Box::new(subquery)));
            } else {
                sources.push(Source::Measurement(self.qualified_measurement()?));
            }
            if !self.accept(&TokenKind::Comma)? {
                return Ok(sources);
            }
        }
    }

    /// `FROM m[, …]` of the SHOW statements (no subqueries), or nothing.
    fn show_sources(&mut self) -> Result<Vec<QualifiedMeasurementName>> {
        let mut sources = Vec::new();
        if !self.accept_keyword("FROM")? {
            return Ok(sources);
        }
        loop {
            sources.push(self.qualified_measurement()?);
            if !self.accept(&TokenKind::Comma)? {
                return Ok(sources);
            }
        }
    }

    /// `name`, `rp.name`, `db.rp.name`, `db..name`; the last part may be a regex.
    fn qualified_measurement(&mut self) -> Result<QualifiedMeasurementName> {
        // Segments before the last; `None` is the empty one in `db..m`.
        let mut prefix: Vec<Option<String>> = Vec::new();
        loop {
            if let Some(re) = self.accept_regex()? {
                return self.qualify(prefix, MeasurementName::Regex(re));
            }
            let token = self.next()?;
            let segment = match token.kind {
                TokenKind::Ident(name) | TokenKind::QuotedIdent(name) => Some(name),
                // An empty segment: only in the middle, as in `db..m`.
                TokenKind::Dot if prefix.len() == 1 => {
                    prefix.push(None);
                    continue;
                }
                _ => return Err(self.error(&token, &["identifier", "regex"])),
            };
            if prefix.len() < 2 && self.accept(&TokenKind::Dot)? {
                prefix.push(segment);
                continue;
            }
            let name = segment.unwrap_or_default();
            return self.qualify(prefix, MeasurementName::Name(name));
        }
    }

    fn qualify(
        &self,
        prefix: Vec<Option<String>>,
        name: MeasurementName,
    ) -> Result<QualifiedMeasurementName> {
        let (database, retention_policy) = match prefix.as_slice() {
            [] => (None, None),
            [rp] => (None, rp.clone()),
            [db, rp] => (db.clone(), rp.clone()),
            _ => {
                return Err(ParseError::at(
                    self.src,
                    self.pos,
                    "a measurement has at most three parts: db.rp.measurement",
                ));
            }
        };
        Ok(QualifiedMeasurementName {
            database,
            retention_policy,
            name,
        })
    }

    fn where_clause(&mut self) -> Result<Option<Expr>> {
        if self.accept_keyword("WHERE")? {
            return Ok(Some(self.expr()?));
        }
        Ok(None)
    }

    fn group_by(&mut self) -> Result<Vec<Dimension>> {
        let mut dimensions = Vec::new();
        if !self.accept_keyword("GROUP")? {
            return Ok(dimensions);
        }
        self.expect_keyword("BY")?;
        loop {
            dimensions.push(self.dimension()?);
            if !self.accept(&TokenKind::Comma)? {
                return Ok(dimensions);
            }
        }
    }

    fn dimension(&mut self) -> Result<Dimension> {
        if let Some(re) = self.accept_regex()? {
            return Ok(Dimension::Regex(re));
        }
        let token = self.next()?;
        match token.kind {
            TokenKind::Mul => Ok(Dimension::Wildcard),
            TokenKind::Ident(name)
                if name.eq_ignore_ascii_case("time") && self.accept(&TokenKind::LParen)? =>
            {
                let interval = self.duration()?;
                let offset = if self.accept(&TokenKind::Comma)? {
                    Some(self.signed_duration()?)
                } else {
                    None
                };
                self.expect(&TokenKind::RParen, ")")?;
                Ok(Dimension::Time { interval, offset })
            }
            TokenKind::Ident(name) | TokenKind::QuotedIdent(name) => Ok(Dimension::Tag(name)),
            _ => Err(self.error(&token, &["identifier", "regex", "*"])),
        }
    }

    fn fill(&mut self) -> Result<Option<Fill>> {
        if !self.peek_word("fill")? {
            return Ok(None);
        }
        self.next()?;
        self.expect(&TokenKind::LParen, "(")?;
        let negative = self.accept(&TokenKind::Sub)?;
        let token = self.next()?;
        let text = token.describe(self.src);
        let fill = match &token.kind {
            TokenKind::Ident(word) if !negative => match word.to_ascii_lowercase().as_str() {
                "null" => Fill::Null,
                "none" => Fill::None,
                "previous" => Fill::Previous,
                "linear" => Fill::Linear,
                _ => return Err(self.fill_error(&token)),
            },
            TokenKind::Integer => match signed_integer(text, negative) {
                Some(Literal::Integer(v)) => Fill::Integer(v),
                _ => return Err(self.fill_error(&token)),
            },
            TokenKind::Number => match parse_float(text, negative) {
                Some(v) => Fill::Float(v),
                None => return Err(self.fill_error(&token)),
            },
            _ => return Err(self.fill_error(&token)),
        };
        self.expect(&TokenKind::RParen, ")")?;
        Ok(Some(fill))
    }

    fn fill_error(&self, token: &Token) -> ParseError {
        self.error(token, &["null", "none", "previous", "linear", "number"])
    }

    fn order_by(&mut self) -> Result<Option<SortOrder>> {
        if !self.accept_keyword("ORDER")? {
            return Ok(None);
        }
        self.expect_keyword("BY")?;
        let token = self.next()?;
        let order = match &token.kind {
            TokenKind::Ident(name) | TokenKind::QuotedIdent(name)
                if name.eq_ignore_ascii_case("time") =>
            {
                if self.accept_keyword("DESC")? {
                    SortOrder::Descending
                } else {
                    self.accept_keyword("ASC")?;
                    SortOrder::Ascending
                }
            }
            TokenKind::Keyword("ASC") => SortOrder::Ascending,
            TokenKind::Keyword("DESC") => SortOrder::Descending,
            TokenKind::Ident(_) | TokenKind::QuotedIdent(_) => {
                return Err(ParseError::at(
                    self.src,
                    token.start,
                    "only ORDER BY time supported at this time",
                ));
            }
            _ => return Err(self.error(&token, &["identifier", "ASC", "DESC"])),
        };
        Ok(Some(order))
    }

    fn count_clause(&mut self, keyword: &str) -> Result<Option<u64>> {
        if self.accept_keyword(keyword)? {
            return Ok(Some(self.unsigned()?));
        }
        Ok(None)
    }

    fn timezone(&mut self) -> Result<Option<String>> {
        if !self.peek_word("tz")? {
            return Ok(None);
        }
        self.next()?;
        self.expect(&TokenKind::LParen, "(")?;
        let token = self.next()?;
        let TokenKind::Str(tz) = token.kind else {
            return Err(self.error(&token, &["string"]));
        };
        self.expect(&TokenKind::RParen, ")")?;
        Ok(Some(tz))
    }

    fn on_database(&mut self) -> Result<Option<String>> {
        if self.accept_keyword("ON")? {
            return Ok(Some(self.identifier()?));
        }
        Ok(None)
    }

    fn show(&mut self) -> Result<Statement> {
        let token = self.next()?;
        match token.kind {
            TokenKind::Keyword("DATABASES") => Ok(Statement::ShowDatabases),
            TokenKind::Keyword("MEASUREMENTS") => self.show_measurements(),
            TokenKind::Keyword("TAG") => {
                let token = self.next()?;
                match token.kind {
                    TokenKind::Keyword("KEYS") => self.show_tag_keys(),
                    TokenKind::Keyword("VALUES") => self.show_tag_values(),
                    _ => Err(self.error(&token, &["KEYS", "VALUES"])),
                }
            }
            TokenKind::Keyword("FIELD") => {
                self.expect_keyword("KEYS")?;
                let database = self.on_database()?;
                let sources = self.show_sources()?;
                Ok(Statement::ShowFieldKeys(ShowFieldKeysStatement {
                    database,
                    sources,
                    limit: self.count_clause("LIMIT")?,
                    offset: self.count_clause("OFFSET")?,
                }))
            }
            TokenKind::Keyword("SERIES") => {
                let database = self.on_database()?;
                let sources = self.show_sources()?;
                Ok(Statement::ShowSeries(ShowSeriesStatement {
                    database,
                    sources,
                    condition: self.where_clause()?,
                    limit: self.count_clause("LIMIT")?,
                    offset: self.count_clause("OFFSET")?,
                }))
            }
            TokenKind::Keyword("RETENTION") => {
                self.expect_keyword("POLICIES")?;
                Ok(Statement::ShowRetentionPolicies(
                    ShowRetentionPoliciesStatement {
                        database: self.on_database()?,
                    },
                ))
            }
            _ => Err(self.error(
                &token,
                &[
                    "DATABASES",
                    "FIELD",
                    "MEASUREMENTS",
                    "RETENTION",
                    "SERIES",
                    "TAG",
                ],
            )),
        }
    }

    fn show_measurements(&mut self) -> Result<Statement> {
        let database = self.on_database()?;
        let with_measurement = if self.accept_keyword("WITH")? {
            self.expect_keyword("MEASUREMENT")?;
            let token = self.next()?;
            Some(match token.kind {
                TokenKind::Eq => MeasurementName::Name(self.identifier()?),
                TokenKind::EqRegex => MeasurementName::Regex(self.expect_regex()?),
                _ => return Err(self.error(&token, &["=", "=~"])),
            })
        } else {
            None
        };
        Ok(Statement::ShowMeasurements(ShowMeasurementsStatement {
            database,
            with_measurement,
            condition: self.where_clause()?,
            limit: self.count_clause("LIMIT")?,
            offset: self.count_clause("OFFSET")?,
        }))
    }

    fn show_tag_keys(&mut self) -> Result<Statement> {
        let database = self.on_database()?;
        let sources = self.show_sources()?;
        Ok(Statement::ShowTagKeys(ShowTagKeysStatement {
            database,
            sources,
            condition: self.where_clause()?,
            limit: self.count_clause("LIMIT")?,
            offset: self.count_clause("OFFSET")?,
        }))
    }

    fn show_tag_values(&mut self) -> Result<Statement> {
        let database = self.on_database()?;
        let sources = self.show_sources()?;
        self.expect_keyword("WITH")?;
        self.expect_keyword("KEY")?;
        let token = self.next()?;
        let key = match token.kind {
            TokenKind::Eq => ShowTagValuesKey::Eq(self.identifier()?),
            TokenKind::Neq => ShowTagValuesKey::NotEq(self.identifier()?),
            TokenKind::EqRegex => ShowTagValuesKey::EqRegex(self.expect_regex()?),
            TokenKind::NeqRegex => ShowTagValuesKey::NotEqRegex(self.expect_regex()?),
            TokenKind::Keyword("IN") => {
                self.expect(&TokenKind::LParen, "(")?;
                let mut keys = vec![self.identifier()?];
                while self.accept(&TokenKind::Comma)? {
                    keys.push(self.identifier()?);
                }
                self.expect(&TokenKind::RParen, ")")?;
                ShowTagValuesKey::In(keys)
            }
            _ => return Err(self.error(&token, &["=", "!=", "=~", "!~", "IN"])),
        };
        Ok(Statement::ShowTagValues(ShowTagValuesStatement {
            database,
            sources,
            key,
            condition: self.where_clause()?,
            limit: self.count_clause("LIMIT")?,
            offset: self.count_clause("OFFSET")?,
        }))
    }

    fn create(&mut self) -> Result<Statement> {
        self.expect_keyword("DATABASE")?;
        let mut statement = CreateDatabaseStatement {
            name: self.identifier()?,
            duration: None,
            replication: None,
            shard_duration: None,
            retention_policy_name: None,
        };
        if !self.accept_keyword("WITH")? {
            return Ok(Statement::CreateDatabase(statement));
        }
        let mut any = false;
        if self.accept_keyword("DURATION")? {
            statement.duration = Some(if self.accept_keyword("INF")? {
                0
            } else {
                self.duration()?
            });
            any = true;
        }
        if self.accept_keyword("REPLICATION")? {
            statement.replication = Some(self.unsigned()?);
            any = true;
        }
        if self.accept_keyword("SHARD")? {
            self.expect_keyword("DURATION")?;
            statement.shard_duration = Some(self.duration()?);
            any = true;
        }
        if self.accept_keyword("NAME")? {
            statement.retention_policy_name = Some(self.identifier()?);
            any = true;
        }
        if !any {
            let token = self.next()?;
            return Err(self.error(&token, &["DURATION", "REPLICATION", "SHARD", "NAME"]));
        }
        Ok(Statement::CreateDatabase(statement))
    }

    // --- expressions ------------------------------------------------------------------------

    pub(crate) fn expr(&mut self) -> Result<Expr> {
        self.nested(|p| p.binary_expr(1))
    }

    /// Precedence climbing: operators binding at least `min_precedence`, left-associative.
    fn binary_expr(&mut self, min_precedence: u8) -> Result<Expr> {
        let mut lhs = self.unary_expr()?;
        loop {
            let Some(op) = binary_op(self.peek_kind()?) else {
                return Ok(lhs);
            };
            if op.precedence() < min_precedence {
                return Ok(lhs);
            }
            self.next()?;
            let rhs = self.binary_expr(op.precedence() + 1)?;
            lhs = Expr::Binary {
                lhs: Box::new(lhs),
                op,
                rhs: Box::new(rhs),
            };
        }
    }

    fn unary_expr(&mut self) -> Result<Expr> {
        if let Some(re) = self.accept_regex()? {
            return Ok(Expr::Literal(Literal::Regex(re)));
        }
        let token = self.next()?;
        match token.kind {
            TokenKind::LParen => {
                let inner = self.expr()?;
                self.expect(&TokenKind::RParen, ")")?;
                Ok(Expr::Nested(Box::new(inner)))
            }
            TokenKind::Mul => {
                if !self.accept(&TokenKind::DoubleColon)? {
                    return Ok(Expr::Wildcard(None));
                }
                let token = self.next()?;
                match &token.kind {
                    TokenKind::Keyword("FIELD") => Ok(Expr::Wildcard(Some(WildcardType::Field))),
                    TokenKind::Keyword("TAG") => Ok(Expr::Wildcard(Some(WildcardType::Tag))),
                    _ => Err(self.error(&token, &["field", "tag"])),
                }
            }
            TokenKind::Ident(name) | TokenKind::QuotedIdent(name) => {
                if self.accept(&TokenKind::LParen)? {
                    let args = self.call_args()?;
                    return Ok(Expr::Call { name, args });
                }
                let data_type = if self.accept(&TokenKind::DoubleColon)? {
                    Some(self.var_ref_type()?)
                } else {
                    None
                };
                Ok(Expr::VarRef { name, data_type })
            }
            TokenKind::Keyword("DISTINCT") => {
                if self.accept(&TokenKind::LParen)? {
                    let args = self.call_args()?;
                    let name = "distinct".to_owned();
                    return Ok(Expr::Call { name, args });
                }
                Ok(Expr::Distinct(self.identifier()?))
            }
            TokenKind::Keyword("TRUE") => Ok(Expr::Literal(Literal::Boolean(true))),
            TokenKind::Keyword("FALSE") => Ok(Expr::Literal(Literal::Boolean(false))),
            TokenKind::Str(s) => Ok(Expr::Literal(Literal::String(s))),
            TokenKind::BindParam(name) => Ok(Expr::BindParam(name)),
            TokenKind::Integer | TokenKind::Number | TokenKind::Duration(_) => {
                self.number(&token, false)
            }
            TokenKind::Sub => {
                if matches!(
                    self.peek_kind()?,
                    TokenKind::Integer | TokenKind::Number | TokenKind::Duration(_)
                ) {
                    let operand = self.next()?;
                    return self.number(&operand, true);
                }
                // `-x` of anything else is `-1 * x`, as InfluxDB reads it; nested, so that
                // it prints back as one operand.
                let operand = self.unary_expr()?;
                Ok(Expr::Nested(Box::new(Expr::Binary {
                    lhs: Box::new(Expr::Literal(Literal::Integer(-1))),
                    op: BinaryOp::Mul,
                    rhs: Box::new(operand),
                })))
            }
            _ => Err(self.error(&token, EXPECTED_OPERAND)),
        }
    }

    /// A numeric literal from `token`, negated if `negative`.
    fn number(&self, token: &Token, negative: bool) -> Result<Expr> {
        let text = token.describe(self.src);
        let literal = match token.kind {
            TokenKind::Duration(d) => Some(Literal::Duration(if negative { -d } else { d })),
            TokenKind::Integer => signed_integer(text, negative),
            _ => parse_float(text, negative).map(Literal::Float),
        };
        match literal {
            Some(literal) => Ok(Expr::Literal(literal)),
            None => {
                let sign = if negative { "-" } else { "" };
                Err(ParseError::at(
                    self.src,
                    token.start,
                    format!("number {sign}{text} out of range"),
                ))
            }
        }
    }

    /// The arguments of a call, after its `(`.
    fn call_args(&mut self) -> Result<Vec<Expr>> {
        let mut args = Vec::new();
        if self.accept(&TokenKind::RParen)? {
            return Ok(args);
        }
        loop {
            args.push(self.expr()?);
            let token = self.next()?;
            match token.kind {
                TokenKind::Comma => {}
                TokenKind::RParen => return Ok(args),
                _ => return Err(self.error(&token, &[")"])),
            }
        }
    }

    fn var_ref_type(&mut self) -> Result<VarRefDataType> {
        let token = self.next()?;
        let word = match &token.kind {
            TokenKind::Ident(w) => w.to_ascii_lowercase(),
            TokenKind::Keyword(k) => k.to_ascii_lowercase(),
            _ => String::new(),
        };
        Ok(match word.as_str() {
            "field" => VarRefDataType::Field,
            "tag" => VarRefDataType::Tag,
            "integer" => VarRefDataType::Integer,
            "float" => VarRefDataType::Float,
            "string" => VarRefDataType::String,
            "boolean" => VarRefDataType::Boolean,
            "unsigned" => VarRefDataType::Unsigned,
            _ => {
                return Err(self.error(
                    &token,
                    &[
                        "float", "integer", "unsigned", "string", "boolean", "field", "tag",
                    ],
                ));
            }
        })
    }
}

fn binary_op(kind: &TokenKind) -> Option<BinaryOp> {
    Some(match kind {
        TokenKind::Add => BinaryOp::Add,
        TokenKind::Sub => BinaryOp::Sub,
        TokenKind::Mul => BinaryOp::Mul,
        TokenKind::Div => BinaryOp::Div,
        TokenKind::Mod => BinaryOp::Mod,
        TokenKind::BitAnd => BinaryOp::BitAnd,
        TokenKind::BitOr => BinaryOp::BitOr,
        TokenKind::BitXor => BinaryOp::BitXor,
        TokenKind::Eq => BinaryOp::Eq,
        TokenKind::Neq => BinaryOp::NotEq,
        TokenKind::Lt => BinaryOp::Lt,
        TokenKind::Lte => BinaryOp::LtEq,
        TokenKind::Gt => BinaryOp::Gt,
        TokenKind::Gte => BinaryOp::GtEq,
        TokenKind::EqRegex => BinaryOp::EqRegex,
        TokenKind::NeqRegex => BinaryOp::NotEqRegex,
        TokenKind::Keyword("AND") => BinaryOp::And,
        TokenKind::Keyword("OR") => BinaryOp::Or,
        _ => return None,
    })
}

/// Decimal `digits`, negated if `negative`: an `Integer` when it fits `i64`, else an
/// `Unsigned` when positive and it fits `u64`.
fn signed_integer(digits: &str, negative: bool) -> Option<Literal> {
    let magnitude: u64 = digits.parse().ok()?;
    if negative {
        let value = 0i64.checked_sub_unsigned(magnitude)?;
        return Some(Literal::Integer(value));
    }
    Some(match i64::try_from(magnitude) {
        Ok(v) => Literal::Integer(v),
        Err(_) => Literal::Unsigned(magnitude),
    })
}

fn parse_float(text: &str, negative: bool) -> Option<f64> {
    let value: f64 = text.parse().ok()?;
    if !value.is_finite() {
        return None;
    }
    Some(if negative { -value } else { value })
}
