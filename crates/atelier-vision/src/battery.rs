//! Builders of broken and unusual image files: the battery that `decode` is tested against,
//! shared with the command-line tests that check quarantine end to end on each database.
//!
//! Everything is made from scratch in memory, deterministically; nothing is read from disk.

use std::io::Cursor;

use image::{DynamicImage, ImageFormat, Rgb, RgbImage};

/// What decoding a battery file must give.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    /// Decodes to an upright RGB8 picture of this size.
    Usable { width: u32, height: u32 },
    /// Quarantined with a reason containing this text.
    Quarantined(&'static str),
}

/// One file of the battery.
#[derive(Debug, Clone)]
pub struct BatteryCase {
    pub file_name: &'static str,
    pub bytes: Vec<u8>,
    pub expected: Expected,
}

/// A file that decodes to an upright RGB8 picture of `width` x `height`.
const fn usable(width: u32, height: u32) -> Expected {
    Expected::Usable { width, height }
}

/// The whole battery, one case per kind of file a catalogue meets.
pub fn battery() -> Vec<BatteryCase> {
    use Expected::Quarantined;
    let full_jpeg = jpeg(64, 48);
    let case = |file_name, bytes, expected| BatteryCase {
        file_name,
        bytes,
        expected,
    };
    vec![
        case("good.jpg", full_jpeg.clone(), usable(64, 48)),
        case(
            "truncated.jpg",
            full_jpeg[..full_jpeg.len() * 6 / 10].to_vec(),
            Quarantined("truncated jpeg"),
        ),
        case("empty.jpg", Vec::new(), Quarantined("file is empty")),
        case(
            "random.jpg",
            deterministic_noise(4096),
            Quarantined("no known image signature"),
        ),
        case(
            "error-page.jpg",
            b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head></html>".to_vec(),
            Quarantined("is an HTML page"),
        ),
        case("bomb.png", png_bomb_header(), Quarantined("100000×100000")),
        case("cmyk.jpg", cmyk_cyan_jpeg(), usable(32, 16)),
        case("deep.png", sixteen_bit_png(), usable(16, 16)),
        case("grey.png", grey_png(), usable(16, 16)),
        case("animated.gif", animated_gif(), usable(16, 16)),
        case(
            "rotated.jpg",
            with_exif_orientation(&jpeg(40, 20), 6),
            usable(20, 40),
        ),
        case(
            "tiny.png",
            one_pixel_png(),
            Quarantined("under the 8×8 minimum"),
        ),
        case("lossless.webp", webp_lossless(), usable(24, 12)),
        case(
            "scan.exr",
            vec![0x76, 0x2f, 0x31, 0x01, 2, 0, 0, 0, 0, 0, 0, 0],
            Quarantined("unsupported image format"),
        ),
    ]
}

pub fn two_colour_image(width: u32, height: u32) -> RgbImage {
    // Left half red, right half blue: orientation changes are visible in where red ends up.
    RgbImage::from_fn(width, height, |x, _| {
        if x < width / 2 {
            Rgb([220, 20, 20])
        } else {
            Rgb([20, 20, 220])
        }
    })
}

pub fn encode(image: DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, format).expect("encode fixture");
    out.into_inner()
}

pub fn jpeg(width: u32, height: u32) -> Vec<u8> {
    encode(
        DynamicImage::ImageRgb8(two_colour_image(width, height)),
        ImageFormat::Jpeg,
    )
}

pub fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut chunk = (data.len() as u32).to_be_bytes().to_vec();
    chunk.extend_from_slice(kind);
    chunk.extend_from_slice(data);
    let mut crc = crc32fast::Hasher::new();
    crc.update(kind);
    crc.update(data);
    chunk.extend_from_slice(&crc.finalize().to_be_bytes());
    chunk
}

/// A valid PNG header that claims a 100 000 × 100 000 RGBA picture (40 GB decoded).
pub fn png_bomb_header() -> Vec<u8> {
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 6, 0, 0, 0]); // 8-bit RGBA, deflate, no filter, no interlace
    let mut file = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
    file.extend(png_chunk(b"IHDR", &ihdr));
    file.extend(png_chunk(
        b"IDAT",
        &[0x78, 0x9C, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    ));
    file.extend(png_chunk(b"IEND", &[]));
    file
}

/// Inserts an EXIF APP1 segment with the given orientation tag right after the JPEG's SOI.
pub fn with_exif_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
    let mut tiff = b"II*\0".to_vec();
    tiff.extend_from_slice(&8u32.to_le_bytes()); // first IFD right after the header
    tiff.extend_from_slice(&1u16.to_le_bytes()); // one entry
    tiff.extend_from_slice(&0x0112u16.to_le_bytes()); // Orientation
    tiff.extend_from_slice(&3u16.to_le_bytes()); // SHORT
    tiff.extend_from_slice(&1u32.to_le_bytes()); // count
    tiff.extend_from_slice(&orientation.to_le_bytes());
    tiff.extend_from_slice(&[0, 0]); // value padding
    tiff.extend_from_slice(&0u32.to_le_bytes()); // no next IFD
    let mut payload = b"Exif\0\0".to_vec();
    payload.extend(tiff);
    let mut out = jpeg[..2].to_vec(); // SOI
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
    out.extend(payload);
    out.extend_from_slice(&jpeg[2..]);
    out
}

pub fn cmyk_cyan_jpeg() -> Vec<u8> {
    let (width, height) = (32u16, 16u16);
    // Full cyan ink, no magenta, yellow or black: should come out as cyan (low red).
    let pixels: Vec<u8> = (0..u32::from(width) * u32::from(height))
        .flat_map(|_| [255u8, 0, 0, 0])
        .collect();
    let mut out = Vec::new();
    jpeg_encoder::Encoder::new(&mut out, 95)
        .encode(&pixels, width, height, jpeg_encoder::ColorType::Cmyk)
        .expect("encode CMYK");
    out
}

pub fn animated_gif() -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut encoder = image::codecs::gif::GifEncoder::new(&mut out);
        let frames = [Rgb([250u8, 10, 10]), Rgb([10, 250, 10])].map(|colour| {
            let rgba = DynamicImage::ImageRgb8(RgbImage::from_pixel(16, 16, colour)).to_rgba8();
            image::Frame::new(rgba)
        });
        encoder.encode_frames(frames).expect("encode gif");
    }
    out
}

pub fn webp_lossless() -> Vec<u8> {
    let mut out = Vec::new();
    let picture = two_colour_image(24, 12);
    image::codecs::webp::WebPEncoder::new_lossless(&mut out)
        .encode(picture.as_raw(), 24, 12, image::ExtendedColorType::Rgb8)
        .expect("encode webp");
    out
}

pub fn deterministic_noise(len: usize) -> Vec<u8> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

pub fn sixteen_bit_png() -> Vec<u8> {
    let wide = image::ImageBuffer::<Rgb<u16>, _>::from_fn(16, 16, |x, _| {
        Rgb([if x < 8 { 65535 } else { 257 * 100 }, 0, 32768])
    });
    encode(DynamicImage::ImageRgb16(wide), ImageFormat::Png)
}

pub fn grey_png() -> Vec<u8> {
    let grey = image::GrayImage::from_fn(16, 16, |x, _| image::Luma([(x * 16) as u8]));
    encode(DynamicImage::ImageLuma8(grey), ImageFormat::Png)
}

pub fn one_pixel_png() -> Vec<u8> {
    encode(
        DynamicImage::ImageRgb8(RgbImage::new(1, 1)),
        ImageFormat::Png,
    )
}
