//! Tolerant decoding: any file in, either an upright RGB8 picture or a reason a person understands.
//!
//! Catalogue photos come from many hands: truncated uploads, HTML error pages saved as `.jpg`,
//! CMYK print files, 16-bit scans, phone pictures rotated by an EXIF tag, and the occasional
//! decompression bomb. Nothing here panics or allocates before the pixel size is known to be sane;
//! every failure is a [`DecodeError`] whose `Display` is the quarantine reason stored in the
//! catalogue.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits, RgbImage};
use sha2::{Digest, Sha256};

/// Bounds that protect the process from hostile or absurd files.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DecodeLimits {
    /// Largest accepted width or height in pixels.
    pub max_side: u32,
    /// Largest accepted width × height (e.g. 100 megapixels).
    pub max_pixels: u64,
    /// Smallest accepted width or height; smaller pictures carry no usable detail.
    pub min_side: u32,
    /// Largest accepted file size in bytes.
    pub max_file_bytes: u64,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_side: 16_384,
            max_pixels: 100_000_000,
            min_side: 8,
            max_file_bytes: 256 * 1024 * 1024,
        }
    }
}

/// A successfully decoded picture, upright and in RGB8.
#[derive(Debug, Clone)]
pub struct DecodedImage {
    pub rgb: RgbImage,
    /// Container format, lower case (`jpeg`, `png`, ...).
    pub format: &'static str,
    /// Lowercase hex SHA-256 of the file's bytes (the catalogue's image id).
    pub sha256: String,
    pub byte_len: u64,
    /// True when an EXIF orientation other than "upright" was applied.
    pub reoriented: bool,
}

/// Why a file could not be used. The `Display` text is the quarantine reason.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("file not found: {}", .0.display())]
    NotFound(PathBuf),
    #[error("cannot read {}: {source}", .path.display())]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("file is empty (0 bytes)")]
    Empty,
    #[error("file is {bytes} bytes, over the {limit}-byte limit")]
    FileTooLarge { bytes: u64, limit: u64 },
    #[error("not an image: the file {looks_like}")]
    NotAnImage { looks_like: String },
    #[error("unsupported image format: {format} (use JPEG, PNG, WebP, GIF, BMP or TIFF)")]
    UnsupportedFormat { format: String },
    #[error(
        "image is {width}×{height} pixels, over the limit ({max_side} per side, {max_pixels} in all); refused before decoding"
    )]
    TooLarge {
        width: u32,
        height: u32,
        max_side: u32,
        max_pixels: u64,
    },
    #[error("image is {width}×{height} pixels, under the {min_side}×{min_side} minimum")]
    TooSmall {
        width: u32,
        height: u32,
        min_side: u32,
    },
    #[error("truncated {format} file: the image data ends early")]
    Truncated { format: &'static str },
    #[error("corrupt {format} file: {detail}")]
    Corrupt {
        format: &'static str,
        detail: String,
    },
}

/// Reads and decodes one file. Never panics.
pub fn decode_file(path: &Path, limits: &DecodeLimits) -> Result<DecodedImage, DecodeError> {
    let metadata = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(DecodeError::NotFound(path.to_path_buf()));
        }
        Err(source) => {
            return Err(DecodeError::Unreadable {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    // Checked before reading so a huge file is never pulled into memory.
    if metadata.len() > limits.max_file_bytes {
        return Err(DecodeError::FileTooLarge {
            bytes: metadata.len(),
            limit: limits.max_file_bytes,
        });
    }
    let bytes = std::fs::read(path).map_err(|source| DecodeError::Unreadable {
        path: path.to_path_buf(),
        source,
    })?;
    decode_bytes(&bytes, limits)
}

/// Decodes an in-memory file. Never panics.
pub fn decode_bytes(bytes: &[u8], limits: &DecodeLimits) -> Result<DecodedImage, DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    if bytes.len() as u64 > limits.max_file_bytes {
        return Err(DecodeError::FileTooLarge {
            bytes: bytes.len() as u64,
            limit: limits.max_file_bytes,
        });
    }
    let format = detect_format(bytes)?;
    // Decoders are third-party code fed hostile input; a panic inside one must become a
    // quarantine reason, not a crashed batch.
    let decoded = std::panic::catch_unwind(|| decode_with_format(bytes, format, limits))
        .unwrap_or_else(|_| {
            Err(DecodeError::Corrupt {
                format: format_name(format),
                detail: "the decoder failed on this file".to_string(),
            })
        })?;
    Ok(DecodedImage {
        rgb: decoded.0,
        format: format_name(format),
        sha256: sha256_hex(bytes),
        byte_len: bytes.len() as u64,
        reoriented: decoded.1,
    })
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn detect_format(bytes: &[u8]) -> Result<ImageFormat, DecodeError> {
    match image::guess_format(bytes) {
        Ok(format) if is_enabled(format) => Ok(format),
        Ok(format) => Err(DecodeError::UnsupportedFormat {
            format: format!("{format:?}").to_lowercase(),
        }),
        Err(_) => Err(DecodeError::NotAnImage {
            looks_like: describe_non_image(bytes),
        }),
    }
}

fn is_enabled(format: ImageFormat) -> bool {
    matches!(
        format,
        ImageFormat::Jpeg
            | ImageFormat::Png
            | ImageFormat::Gif
            | ImageFormat::WebP
            | ImageFormat::Bmp
            | ImageFormat::Tiff
    )
}

fn format_name(format: ImageFormat) -> &'static str {
    match format {
        ImageFormat::Jpeg => "jpeg",
        ImageFormat::Png => "png",
        ImageFormat::Gif => "gif",
        ImageFormat::WebP => "webp",
        ImageFormat::Bmp => "bmp",
        ImageFormat::Tiff => "tiff",
        _ => "image",
    }
}

/// A short description of what a non-image file seems to be, so the reason helps the person
/// who has to fix the upload (an HTML error page saved as `.jpg` is the classic case).
fn describe_non_image(bytes: &[u8]) -> String {
    let head = &bytes[..bytes.len().min(512)];
    let text = String::from_utf8_lossy(head).to_ascii_lowercase();
    let trimmed = text.trim_start_matches('\u{feff}').trim_start();
    if trimmed.starts_with("<!doctype html") || trimmed.starts_with("<html") {
        return "is an HTML page".to_string();
    }
    if trimmed.starts_with("<?xml") || trimmed.starts_with("<svg") {
        return "is XML/SVG text (vector images are not supported)".to_string();
    }
    let printable = head
        .iter()
        .filter(|b| b.is_ascii_graphic() || b.is_ascii_whitespace())
        .count();
    if printable * 10 >= head.len() * 9 {
        return "is plain text".to_string();
    }
    let signature: Vec<String> = head.iter().take(4).map(|b| format!("{b:02x}")).collect();
    format!(
        "has no known image signature (starts with {})",
        signature.join(" ")
    )
}

fn decode_with_format(
    bytes: &[u8],
    format: ImageFormat,
    limits: &DecodeLimits,
) -> Result<(RgbImage, bool), DecodeError> {
    let name = format_name(format);
    let corrupt = |e: image::ImageError| classify_decoder_error(name, e);

    // Reading the header alone tells the dimensions; refuse absurd ones before any pixel
    // buffer exists, with a message that states the size. Our own limits are installed on the
    // decoder only after that check, for the allocation itself.
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    reader.no_limits();
    let mut decoder = reader.into_decoder().map_err(corrupt)?;
    let (width, height) = decoder.dimensions();
    check_dimensions(width, height, limits)?;
    let mut decoder_limits = Limits::default();
    decoder_limits.max_image_width = Some(limits.max_side);
    decoder_limits.max_image_height = Some(limits.max_side);
    // RGBA16 is the widest buffer a decoder allocates: 8 bytes a pixel, plus slack for the
    // conversion copy.
    decoder_limits.max_alloc = Some(limits.max_pixels.saturating_mul(8 * 2));
    decoder.set_limits(decoder_limits).map_err(corrupt)?;
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let decoded = DynamicImage::from_decoder(decoder);
    // A JPEG without its end marker was cut short, whatever the decoder made of it: lenient
    // decoders fill missing scan data with grey instead of failing.
    if format == ImageFormat::Jpeg && !jpeg_has_end_marker(bytes) {
        return Err(DecodeError::Truncated { format: name });
    }
    let mut picture = decoded.map_err(corrupt)?;
    let reoriented = orientation != image::metadata::Orientation::NoTransforms;
    picture.apply_orientation(orientation);
    Ok((to_rgb8_over_white(picture), reoriented))
}

fn check_dimensions(width: u32, height: u32, limits: &DecodeLimits) -> Result<(), DecodeError> {
    if width > limits.max_side
        || height > limits.max_side
        || u64::from(width) * u64::from(height) > limits.max_pixels
    {
        return Err(DecodeError::TooLarge {
            width,
            height,
            max_side: limits.max_side,
            max_pixels: limits.max_pixels,
        });
    }
    if width < limits.min_side || height < limits.min_side {
        return Err(DecodeError::TooSmall {
            width,
            height,
            min_side: limits.min_side,
        });
    }
    Ok(())
}

fn classify_decoder_error(name: &'static str, e: image::ImageError) -> DecodeError {
    let detail = e.to_string();
    let lower = detail.to_ascii_lowercase();
    let is_truncation = matches!(&e, image::ImageError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof)
        || lower.contains("eof")
        || lower.contains("end of file")
        || lower.contains("unexpected end")
        || lower.contains("truncated")
        || lower.contains("no more bytes")
        || lower.contains("not enough data")
        || lower.contains("not enough bytes");
    match e {
        image::ImageError::Unsupported(_) => DecodeError::UnsupportedFormat {
            format: format!("{name} variant ({detail})"),
        },
        _ if is_truncation => DecodeError::Truncated { format: name },
        _ => DecodeError::Corrupt {
            format: name,
            detail,
        },
    }
}

/// A complete JPEG ends its last scan with an EOI marker (FF D9). Embedded EXIF thumbnails have
/// their own EOI early in the file, so only an EOI after the last start-of-scan counts.
fn jpeg_has_end_marker(bytes: &[u8]) -> bool {
    let last_sos = bytes.windows(2).rposition(|w| w == [0xFF, 0xDA]);
    let last_eoi = bytes.windows(2).rposition(|w| w == [0xFF, 0xD9]);
    match (last_sos, last_eoi) {
        (Some(sos), Some(eoi)) => eoi > sos,
        _ => false,
    }
}

/// Converts any pixel layout (grey, CMYK-converted, 16-bit, alpha) to RGB8. Transparent pixels
/// are composited over white, the studio background of product photos, rather than keeping
/// whatever colour the file stored under zero alpha.
fn to_rgb8_over_white(picture: DynamicImage) -> RgbImage {
    if !picture.color().has_alpha() {
        return picture.into_rgb8();
    }
    let rgba = picture.into_rgba8();
    let (width, height) = rgba.dimensions();
    let mut rgb = RgbImage::new(width, height);
    for (out, px) in rgb.pixels_mut().zip(rgba.pixels()) {
        let alpha = u32::from(px[3]);
        for c in 0..3 {
            let blended = (u32::from(px[c]) * alpha + 255 * (255 - alpha) + 127) / 255;
            out[c] = blended as u8;
        }
    }
    rgb
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alpha_is_composited_over_white() {
        let mut rgba = image::RgbaImage::new(2, 1);
        rgba.put_pixel(0, 0, image::Rgba([0, 0, 0, 0]));
        rgba.put_pixel(1, 0, image::Rgba([100, 0, 200, 128]));
        let rgb = to_rgb8_over_white(DynamicImage::ImageRgba8(rgba));
        assert_eq!(rgb.get_pixel(0, 0).0, [255, 255, 255]);
        // 100·128/255 + 255·127/255 = 50.2 + 127.0
        assert_eq!(rgb.get_pixel(1, 0).0, [177, 127, 227]);
    }

    #[test]
    fn jpeg_end_marker_must_follow_last_scan() {
        assert!(jpeg_has_end_marker(&[
            0xFF, 0xD8, 0xFF, 0xDA, 1, 2, 0xFF, 0xD9
        ]));
        // A thumbnail's EOI before the main scan does not count.
        assert!(!jpeg_has_end_marker(&[0xFF, 0xD9, 0xFF, 0xDA, 1, 2, 3]));
    }
}
