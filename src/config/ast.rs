//! Syntax tree of an Alloy configuration file.
//!
//! Owns: the shape of a parsed file, with a [`Span`] on every node and the comments and
//! blank lines the formatter needs to reproduce it. Does not own meaning (see `eval` and
//! `build`). Cold path.

use super::diag::Span;

/// A sequence of statements: the whole file or the inside of a block.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Body {
    pub items: Vec<Item>,
}

/// One entry of a body.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// An empty line separates this item from the previous one in the source.
    pub blank_before: bool,
    pub stmt: Stmt,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Stmt {
    Attr(Attribute),
    Block(Block),
    /// A comment on its own line.
    Comment(Comment),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Comment {
    /// As written, including `//` or `/* */`.
    pub text: String,
    pub span: Span,
}

impl Comment {
    /// `// ...` comments end their line, so whatever follows must start a new one.
    pub fn is_line(&self) -> bool {
        self.text.starts_with("//")
    }
}

/// `name = value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Attribute {
    pub name: String,
    pub name_span: Span,
    pub value: Expr,
    /// Comments after the value on the same line (and comments found inside the value
    /// where no better place exists).
    pub trailing: Vec<Comment>,
}

/// `name "label" { body }`; `name` may be dotted (`pyroscope.write`).
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    pub name: String,
    pub name_span: Span,
    /// The label, decoded.
    pub label: Option<String>,
    /// The label as written (with quotes), for the formatter.
    pub label_text: Option<String>,
    pub label_span: Option<Span>,
    pub body: Body,
    /// Comments after the closing brace on the same line.
    pub trailing: Vec<Comment>,
    pub span: Span,
}

impl Block {
    /// `name "label"` as a user would write it, for messages.
    pub fn display_name(&self) -> String {
        match &self.label {
            Some(l) => format!("{} {:?}", self.name, l),
            None => self.name.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    /// A literal, with its source text kept so the formatter prints it byte for byte.
    Literal {
        value: Literal,
        text: String,
    },
    Ident(String),
    /// `base.name`.
    Access {
        base: Box<Expr>,
        name: String,
    },
    Call {
        callee: Box<Expr>,
        args: Vec<Expr>,
    },
    /// `a + b`, the only binary operator pyrogate evaluates.
    Add(Box<Expr>, Box<Expr>),
    /// `-x`.
    Neg(Box<Expr>),
    Paren(Box<Expr>),
    List {
        elems: Vec<Element<Expr>>,
        /// The source put the elements on their own lines.
        multiline: bool,
        /// Comments before the closing bracket, after the last element.
        end_comments: Vec<Comment>,
    },
    Object {
        fields: Vec<Element<Field>>,
        multiline: bool,
        end_comments: Vec<Comment>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

/// A list element or object field with the comments around it.
#[derive(Debug, Clone, PartialEq)]
pub struct Element<T> {
    pub leading: Vec<Comment>,
    pub value: T,
    pub trailing: Vec<Comment>,
}

/// `key = value` inside an object; the key is an identifier or a string.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub key: String,
    /// The key as written (quoted or bare).
    pub key_text: String,
    pub key_span: Span,
    pub value: Expr,
}

/// A span-free, comment-free rendering of a body, used to check that formatting preserves
/// meaning (`parse(format(x))` has the same shape as `parse(x)`).
pub fn shape(body: &Body) -> String {
    let mut out = String::new();
    shape_body(body, &mut out);
    out
}

fn shape_body(body: &Body, out: &mut String) {
    for item in &body.items {
        match &item.stmt {
            Stmt::Attr(a) => {
                out.push_str(&format!("(attr {} ", a.name));
                shape_expr(&a.value, out);
                out.push(')');
            }
            Stmt::Block(b) => {
                out.push_str(&format!("(block {} {:?} ", b.name, b.label));
                shape_body(&b.body, out);
                out.push(')');
            }
            Stmt::Comment(_) => {}
        }
    }
}

fn shape_expr(e: &Expr, out: &mut String) {
    match &e.kind {
        ExprKind::Literal { value, .. } => out.push_str(&format!("{value:?}")),
        ExprKind::Ident(n) => out.push_str(n),
        ExprKind::Access { base, name } => {
            shape_expr(base, out);
            out.push('.');
            out.push_str(name);
        }
        ExprKind::Call { callee, args } => {
            shape_expr(callee, out);
            out.push('(');
            for a in args {
                shape_expr(a, out);
                out.push(',');
            }
            out.push(')');
        }
        ExprKind::Add(a, b) => {
            out.push_str("(+ ");
            shape_expr(a, out);
            out.push(' ');
            shape_expr(b, out);
            out.push(')');
        }
        ExprKind::Neg(a) => {
            out.push_str("(- ");
            shape_expr(a, out);
            out.push(')');
        }
        ExprKind::Paren(a) => {
            out.push_str("(paren ");
            shape_expr(a, out);
            out.push(')');
        }
        ExprKind::List { elems, .. } => {
            out.push('[');
            for el in elems {
                shape_expr(&el.value, out);
                out.push(',');
            }
            out.push(']');
        }
        ExprKind::Object { fields, .. } => {
            out.push('{');
            for f in fields {
                out.push_str(&format!("{:?}=", f.value.key));
                shape_expr(&f.value.value, out);
                out.push(',');
            }
            out.push('}');
        }
    }
}
