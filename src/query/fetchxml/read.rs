//! Reading FetchXML: text → element tree (quick-xml does the XML; DTDs, length and depth are refused here).

use super::*;

/// One element of the document, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Element {
    pub(super) name: String,
    /// Names and normalised values, in document order (`xmlns` declarations included).
    pub(super) attributes: Vec<(String, String)>,
    pub(super) children: Vec<Element>,
    /// The character data directly inside, concatenated.
    pub(super) text: String,
    /// Character offset of its `<`.
    pub(super) position: usize,
}

impl Element {
    pub(super) fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads `text` into its root element.
pub(super) fn read(text: &str) -> Result<Element, QueryError> {
    let length = text.chars().count();
    if length > MAX_OPTION_LENGTH {
        return Err(QueryError::TooLong {
            option: "fetchXml".into(),
            length,
            limit: MAX_OPTION_LENGTH,
        });
    }
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let offsets = std::cell::RefCell::new(Offsets { byte: 0, chars: 0 });
    let char_offset = |byte: u64| offsets.borrow_mut().chars_before(text, byte);
    let invalid = |position: usize, what: String| QueryError::InvalidXml {
        detail: format!("{what} (at position {position})."),
    };
    // The text is a `str`, so decoding cannot fail; the reader reports it all the same.
    let encoding =
        |position: usize, e: &dyn std::fmt::Display| invalid(position, format!("Bad text: {e}"));

    let mut reader = Reader::from_str(text);
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let start = char_offset(reader.buffer_position());
        let event = reader.read_event().map_err(|e| {
            let at = char_offset(reader.error_position());
            invalid(at, format!("The document is not well-formed: {e}"))
        })?;
        let (element, empty) = match event {
            Event::Start(tag) => (tag, false),
            Event::Empty(tag) => (tag, true),
            Event::End(_) => {
                let element = stack
                    .pop()
                    .ok_or_else(|| invalid(start, "An end tag closes no element".into()))?;
                attach(&mut stack, &mut root, element)
                    .map_err(|what| invalid(start, what.into()))?;
                continue;
            }
            Event::Text(content) => {
                let content = content.xml10_content().map_err(|e| encoding(start, &e))?;
                append_text(&mut stack, &content).map_err(|what| invalid(start, what.into()))?;
                continue;
            }
            Event::CData(content) => {
                let content = content.xml10_content().map_err(|e| encoding(start, &e))?;
                append_text(&mut stack, &content).map_err(|what| invalid(start, what.into()))?;
                continue;
            }
            Event::GeneralRef(reference) => {
                let name = reference.decode().map_err(|e| encoding(start, &e))?;
                let resolved = match reference.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    Ok(None) => quick_xml::escape::resolve_predefined_entity(&name)
                        .ok_or_else(|| {
                            invalid(start, format!("The entity '&{name};' is not defined"))
                        })?
                        .to_string(),
                    Err(e) => {
                        return Err(invalid(start, format!("A bad character reference: {e}")))
                    }
                };
                append_text(&mut stack, &resolved).map_err(|what| invalid(start, what.into()))?;
                continue;
            }
            Event::DocType(_) => {
                return Err(invalid(
                    start,
                    "A document type declaration is not allowed".into(),
                ))
            }
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => continue,
            Event::Eof => break,
        };
        if stack.len() >= MAX_ELEMENT_DEPTH {
            return Err(QueryError::TooDeep);
        }
        let mut attributes = Vec::new();
        for attribute in element.attributes() {
            let attribute =
                attribute.map_err(|e| invalid(start, format!("A malformed attribute: {e}")))?;
            let value = attribute
                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map_err(|e| invalid(start, format!("A malformed attribute value: {e}")))?;
            let name =
                std::str::from_utf8(attribute.key.as_ref()).map_err(|e| encoding(start, &e))?;
            attributes.push((name.to_string(), value.into_owned()));
        }
        let name = std::str::from_utf8(element.name().as_ref())
            .map_err(|e| encoding(start, &e))?
            .to_string();
        let element = Element {
            name,
            attributes,
            children: Vec::new(),
            text: String::new(),
            position: start,
        };
        if empty {
            attach(&mut stack, &mut root, element).map_err(|what| invalid(start, what.into()))?;
        } else {
            stack.push(element);
        }
    }
    let end = text.chars().count();
    if let Some(open) = stack.last() {
        return Err(invalid(
            end,
            format!("The element '{}' is not closed", open.name),
        ));
    }
    root.ok_or_else(|| invalid(end, "The document has no root element".into()))
}

/// Converts the byte offsets quick-xml reports into character offsets, counting forward from the
/// last offset asked for (they only grow while reading).
pub(super) struct Offsets {
    pub(super) byte: usize,
    pub(super) chars: usize,
}

impl Offsets {
    pub(super) fn chars_before(&mut self, text: &str, byte: u64) -> usize {
        let mut byte = usize::try_from(byte).unwrap_or(usize::MAX).min(text.len());
        while !text.is_char_boundary(byte) {
            byte -= 1;
        }
        if byte < self.byte {
            *self = Offsets { byte: 0, chars: 0 };
        }
        self.chars += text[self.byte..byte].chars().count();
        self.byte = byte;
        self.chars
    }
}

pub(super) fn attach(
    stack: &mut [Element],
    root: &mut Option<Element>,
    element: Element,
) -> Result<(), &'static str> {
    match stack.last_mut() {
        Some(parent) => parent.children.push(element),
        None if root.is_some() => return Err("The document has more than one root element"),
        None => *root = Some(element),
    }
    Ok(())
}

pub(super) fn append_text(stack: &mut [Element], text: &str) -> Result<(), &'static str> {
    match stack.last_mut() {
        Some(element) => element.text.push_str(text),
        None if text.trim().is_empty() => {}
        None => return Err("Text is not allowed outside the root element"),
    }
    Ok(())
}
