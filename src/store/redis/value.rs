//! Reading the scripts' replies: arrays of strings, integers and nested arrays.
//!
//! A reply that does not have the expected shape is a bug or a foreign write under our
//! prefix; it answers `UNAVAILABLE` rather than panicking.

use redis::Value;

use crate::protocol::{AppError, ChatMode, DisplayName, UserId};

fn malformed() -> AppError {
    tracing::error!("a Redis script replied in an unexpected shape");
    AppError::unavailable()
}

/// One element of a reply.
pub struct Row(Value);

impl Row {
    pub fn into_string(self) -> Result<String, AppError> {
        match self.0 {
            Value::BulkString(b) => String::from_utf8(b).map_err(|_| malformed()),
            Value::SimpleString(s) => Ok(s),
            Value::Okay => Ok("OK".into()),
            Value::Int(n) => Ok(n.to_string()),
            _ => Err(malformed()),
        }
    }

    pub fn user(&mut self) -> Result<UserId, AppError> {
        let s = std::mem::take(self).into_string()?;
        UserId::parse(&s).map_err(|_| malformed())
    }

    pub fn display_name(&mut self) -> Result<DisplayName, AppError> {
        let s = std::mem::take(self).into_string()?;
        Ok(DisplayName::new(&s))
    }
}

impl Default for Row {
    fn default() -> Self {
        Row(Value::Nil)
    }
}

/// A reply, read front to back.
pub struct Reply {
    status: String,
    rest: std::vec::IntoIter<Value>,
}

impl Reply {
    /// Splits off the first element (`OK` or a code); a single string is all status.
    pub fn new(value: Value) -> Result<Self, AppError> {
        let mut items = match value {
            Value::Array(items) => items.into_iter(),
            single => vec![single].into_iter(),
        };
        let status = match items.next() {
            Some(first) => Row(first).into_string()?,
            None => String::new(),
        };
        Ok(Reply {
            status,
            rest: items,
        })
    }

    pub fn status(&self) -> &str {
        &self.status
    }

    pub fn is_empty(&self) -> bool {
        self.rest.len() == 0
    }

    fn next(&mut self) -> Result<Row, AppError> {
        self.rest.next().map(Row).ok_or_else(malformed)
    }

    pub fn string(&mut self) -> Result<String, AppError> {
        self.next()?.into_string()
    }

    pub fn int(&mut self) -> Result<usize, AppError> {
        match self.next()?.0 {
            Value::Int(n) => usize::try_from(n).map_err(|_| malformed()),
            Value::BulkString(b) => std::str::from_utf8(&b)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(malformed),
            _ => Err(malformed()),
        }
    }

    pub fn user(&mut self) -> Result<UserId, AppError> {
        self.next()?.user()
    }

    /// A session's mode, as the scripts store it (`ChatMode::as_str`).
    pub fn mode(&mut self) -> Result<ChatMode, AppError> {
        ChatMode::from_name(&self.string()?).ok_or_else(malformed)
    }

    pub fn display_name(&mut self) -> Result<DisplayName, AppError> {
        self.next()?.display_name()
    }

    /// The next element, a nested array, as rows.
    pub fn rows(&mut self) -> Result<impl Iterator<Item = Row> + use<>, AppError> {
        match self.next()?.0 {
            Value::Array(items) => Ok(items.into_iter().map(Row)),
            Value::Nil => Ok(Vec::new().into_iter().map(Row)),
            _ => Err(malformed()),
        }
    }
}
