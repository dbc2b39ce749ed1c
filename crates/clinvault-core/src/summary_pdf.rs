//! A plain text-flow PDF (A4, the standard Helvetica fonts, WinAnsi encoding) for the patient's
//! summary, written with `pdf-writer`. Standard fonts need nothing embedded, so the file stays
//! small and every reader shows it; the price is that characters outside Windows-1252 (Latin
//! script beyond Western Europe, Greek, Cyrillic, CJK…) print as "?". The HTML summary beside it
//! keeps every character.

use pdf_writer::{Content, Name, Pdf, Rect, Ref, Str};

#[derive(Clone, Copy)]
pub enum Style {
    Title,
    Heading,
    Bold,
    Body,
}

impl Style {
    fn size(self) -> f32 {
        match self {
            Style::Title => 16.0,
            Style::Heading => 12.5,
            Style::Bold | Style::Body => 9.5,
        }
    }
    fn bold(self) -> bool {
        !matches!(self, Style::Body)
    }
}

/// Pieces of WinAnsi text, each at its offset from the left margin.
type Cells = Vec<(f32, Vec<u8>)>;

/// The summary as styled lines, wrapped to the page width, then laid out on pages. A line is
/// one or more pieces of text, each at its own offset from the left margin (table columns).
#[derive(Default)]
pub struct Lines {
    lines: Vec<(Style, Cells)>,
    watermark: Option<Vec<u8>>,
}

const PAGE_W: f32 = 595.0;
const PAGE_H: f32 = 842.0;
const MARGIN: f32 = 56.0;

/// Windows-1252 for the standard fonts' WinAnsiEncoding; anything else becomes '?'.
fn win_ansi(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| match c as u32 {
            0x20..=0x7E | 0xA0..=0xFF => c as u32 as u8,
            _ => match c {
                '€' => 0x80,
                '…' => 0x85,
                '‘' => 0x91,
                '’' => 0x92,
                '“' => 0x93,
                '”' => 0x94,
                '•' => 0x95,
                '–' => 0x96,
                '—' => 0x97,
                '\t' => b' ',
                _ => b'?',
            },
        })
        .collect()
}

impl Lines {
    /// Adds text, wrapped at word boundaries to what fits the page width.
    pub fn push(&mut self, style: Style, text: &str) {
        // Helvetica's average glyph is about half an em wide; 0.55 keeps long words inside.
        let max = ((PAGE_W - 2.0 * MARGIN) / (style.size() * 0.55)) as usize;
        let bytes = win_ansi(text);
        if bytes.is_empty() {
            self.lines.push((style, Vec::new()));
            return;
        }
        let mut line: Vec<u8> = Vec::new();
        for word in bytes.split(|b| *b == b' ') {
            if !line.is_empty() && line.len() + 1 + word.len() > max {
                self.lines
                    .push((style, vec![(0.0, std::mem::take(&mut line))]));
            }
            for piece in word.chunks(max.max(1)) {
                if !line.is_empty() {
                    if line.len() + 1 + piece.len() > max {
                        self.lines
                            .push((style, vec![(0.0, std::mem::take(&mut line))]));
                    } else {
                        line.push(b' ');
                    }
                }
                line.extend_from_slice(piece);
            }
        }
        self.lines.push((style, vec![(0.0, line)]));
    }

    /// One line of table cells, each starting at its offset (points from the left margin).
    /// Cells are not wrapped: a cell longer than `width` characters is cut with "…", so
    /// columns never overlap.
    pub fn row(&mut self, style: Style, cells: &[(f32, usize, &str)]) {
        let cells = cells
            .iter()
            .map(|(x, width, text)| {
                let mut bytes = win_ansi(text);
                if bytes.len() > *width {
                    bytes.truncate(width.saturating_sub(1));
                    bytes.push(0x85);
                }
                (*x, bytes)
            })
            .collect();
        self.lines.push((style, cells));
    }

    /// An empty line before a new section.
    pub fn gap(&mut self) {
        self.lines.push((Style::Body, Vec::new()));
    }

    /// Large light-grey text drawn diagonally behind every page's content (e.g. "VOID").
    pub fn watermark(&mut self, text: &str) {
        self.watermark = Some(win_ansi(text));
    }

    pub fn render(&self) -> Vec<u8> {
        let regular = Name(b"F1");
        let bold = Name(b"F2");
        let catalog = Ref::new(1);
        let tree = Ref::new(2);
        let font_regular = Ref::new(3);
        let font_bold = Ref::new(4);
        let mut next = 5;
        let mut pages: Vec<(Ref, Ref, Content)> = Vec::new();
        let mut y = 0.0f32;
        for (style, text) in &self.lines {
            let step = style.size() * 1.35;
            if pages.is_empty() || y - step < MARGIN {
                let mut c = Content::new();
                c.begin_text();
                if let Some(mark) = &self.watermark {
                    // 45 degrees, centred roughly on the page, behind the text drawn after it.
                    let (sin, cos) = std::f32::consts::FRAC_PI_4.sin_cos();
                    c.set_fill_gray(0.82);
                    c.set_font(bold, 110.0);
                    c.set_text_matrix([cos, sin, -sin, cos, 150.0, 250.0]);
                    c.show(Str(mark));
                    c.set_fill_gray(0.0);
                }
                pages.push((Ref::new(next), Ref::new(next + 1), c));
                next += 2;
                y = PAGE_H - MARGIN;
            }
            y -= step;
            if let Some((_, _, c)) = pages.last_mut() {
                c.set_font(if style.bold() { bold } else { regular }, style.size());
                for (x, piece) in text {
                    c.set_text_matrix([1.0, 0.0, 0.0, 1.0, MARGIN + x, y]);
                    c.show(Str(piece));
                }
            }
        }
        let mut pdf = Pdf::new();
        pdf.catalog(catalog).pages(tree);
        pdf.pages(tree)
            .kids(pages.iter().map(|p| p.0))
            .count(pages.len() as i32);
        for (page_id, content_id, mut content) in pages {
            let mut page = pdf.page(page_id);
            page.media_box(Rect::new(0.0, 0.0, PAGE_W, PAGE_H));
            page.parent(tree);
            page.contents(content_id);
            let mut resources = page.resources();
            let mut fonts = resources.fonts();
            fonts.pair(regular, font_regular);
            fonts.pair(bold, font_bold);
            drop(fonts);
            drop(resources);
            drop(page);
            content.end_text();
            pdf.stream(content_id, &content.finish());
        }
        pdf.type1_font(font_regular)
            .base_font(Name(b"Helvetica"))
            .encoding_predefined(Name(b"WinAnsiEncoding"));
        pdf.type1_font(font_bold)
            .base_font(Name(b"Helvetica-Bold"))
            .encoding_predefined(Name(b"WinAnsiEncoding"));
        pdf.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latin_1_is_kept_and_other_scripts_become_question_marks() {
        assert_eq!(win_ansi("Zoë – €5"), b"Zo\xeb \x96 \x805".to_vec());
        assert_eq!(win_ansi("Ωμέγα"), b"?????".to_vec());
    }

    #[test]
    fn long_text_wraps_and_fills_several_pages() {
        let mut l = Lines::default();
        for i in 0..200 {
            l.push(Style::Body, &format!("line {i} {}", "word ".repeat(40)));
        }
        assert!(l.lines.len() > 400, "wrapped: {}", l.lines.len());
        let pdf = l.render();
        assert!(pdf.starts_with(b"%PDF-"));
        let mut t = Lines::default();
        t.row(Style::Body, &[(0.0, 6, "Description"), (200.0, 8, "1")]);
        assert_eq!(
            t.lines[0].1[0].1,
            b"Descr\x85".to_vec(),
            "cut to its column"
        );
        let pattern = b"/Type /Page";
        let pages = pdf
            .windows(pattern.len() + 1)
            .filter(|w| w.starts_with(pattern) && w[pattern.len()] != b's')
            .count();
        assert!(pages >= 5, "pages: {pages}");
    }
}
