//! The corrupt-file battery: every kind of broken or unusual file a catalogue meets, built here
//! from scratch, with the outcome each must have.

use std::io::Cursor;
use std::path::Path;

use atelier_vision::decode::{DecodeError, DecodeLimits, decode_bytes, decode_file};
use image::{DynamicImage, ImageFormat, Rgb, RgbImage};

fn two_colour_image(width: u32, height: u32) -> RgbImage {
    // Left half red, right half blue: orientation changes are visible in where red ends up.
    RgbImage::from_fn(width, height, |x, _| {
        if x < width / 2 {
            Rgb([220, 20, 20])
        } else {
            Rgb([20, 20, 220])
        }
    })
}

fn encode(image: DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, format).expect("encode fixture");
    out.into_inner()
}

fn jpeg(width: u32, height: u32) -> Vec<u8> {
    encode(
        DynamicImage::ImageRgb8(two_colour_image(width, height)),
        ImageFormat::Jpeg,
    )
}

fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
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
fn png_bomb_header() -> Vec<u8> {
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 6, 0, 0, 0]); // 8-bit RGBA, deflate, no filter, no interlace
    let mut file = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
    file.extend(png_chunk(b"IHDR", &ihdr));
    file.extend(png_chunk(b"IDAT", &[0x78, 0x9C, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]));
    file.extend(png_chunk(b"IEND", &[]));
    file
}

/// Inserts an EXIF APP1 segment with the given orientation tag right after the JPEG's SOI.
fn with_exif_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
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

fn cmyk_cyan_jpeg() -> Vec<u8> {
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

fn animated_gif() -> Vec<u8> {
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

fn webp_lossless() -> Vec<u8> {
    let mut out = Vec::new();
    let picture = two_colour_image(24, 12);
    image::codecs::webp::WebPEncoder::new_lossless(&mut out)
        .encode(
            picture.as_raw(),
            24,
            12,
            image::ExtendedColorType::Rgb8,
        )
        .expect("encode webp");
    out
}

fn deterministic_noise(len: usize) -> Vec<u8> {
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

fn limits() -> DecodeLimits {
    DecodeLimits::default()
}

#[test]
fn truncated_jpeg_is_refused_as_truncated() {
    let full = jpeg(64, 48);
    let cut = &full[..full.len() * 6 / 10];
    let err = decode_bytes(cut, &limits()).unwrap_err();
    assert!(
        matches!(err, DecodeError::Truncated { format: "jpeg" }),
        "{err}"
    );
}

#[test]
fn empty_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.jpg");
    std::fs::write(&path, b"").unwrap();
    let err = decode_file(&path, &limits()).unwrap_err();
    assert!(matches!(err, DecodeError::Empty), "{err}");
    assert_eq!(err.to_string(), "file is empty (0 bytes)");
}

#[test]
fn missing_file_names_the_path() {
    let err = decode_file(Path::new("/nonexistent/dress.jpg"), &limits()).unwrap_err();
    assert!(matches!(err, DecodeError::NotFound(_)), "{err}");
    assert!(err.to_string().contains("/nonexistent/dress.jpg"));
}

#[test]
fn random_bytes_are_not_an_image() {
    let err = decode_bytes(&deterministic_noise(4096), &limits()).unwrap_err();
    assert!(matches!(err, DecodeError::NotAnImage { .. }), "{err}");
    assert!(err.to_string().contains("no known image signature"), "{err}");
}

#[test]
fn html_saved_as_jpg_is_recognised() {
    let html = b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head></html>";
    let err = decode_bytes(html, &limits()).unwrap_err();
    assert_eq!(err.to_string(), "not an image: the file is an HTML page");
}

#[test]
fn png_header_claiming_huge_size_is_refused_before_decoding() {
    let err = decode_bytes(&png_bomb_header(), &limits()).unwrap_err();
    match err {
        DecodeError::TooLarge { width, height, .. } => {
            assert_eq!((width, height), (100_000, 100_000));
        }
        other => panic!("expected TooLarge, got {other}"),
    }
}

#[test]
fn dimension_limit_is_configurable() {
    let small_limits = DecodeLimits {
        max_side: 32,
        ..DecodeLimits::default()
    };
    assert!(matches!(
        decode_bytes(&jpeg(64, 48), &small_limits),
        Err(DecodeError::TooLarge { width: 64, height: 48, .. })
    ));
    assert!(decode_bytes(&jpeg(32, 16), &small_limits).is_ok());
}

#[test]
fn cmyk_jpeg_becomes_rgb_with_the_right_colour() {
    let decoded = decode_bytes(&cmyk_cyan_jpeg(), &limits()).expect("CMYK decodes");
    assert_eq!(decoded.rgb.dimensions(), (32, 16));
    let [r, g, b] = decoded.rgb.get_pixel(16, 8).0;
    assert!(r < 80 && g > 150 && b > 150, "cyan expected, got {r},{g},{b}");
}

#[test]
fn sixteen_bit_png_is_scaled_to_eight_bits() {
    let wide = image::ImageBuffer::<Rgb<u16>, _>::from_fn(16, 16, |x, _| {
        Rgb([if x < 8 { 65535 } else { 257 * 100 }, 0, 32768])
    });
    let bytes = encode(DynamicImage::ImageRgb16(wide), ImageFormat::Png);
    let decoded = decode_bytes(&bytes, &limits()).expect("16-bit PNG decodes");
    assert_eq!(decoded.format, "png");
    assert_eq!(decoded.rgb.get_pixel(0, 0).0, [255, 0, 128]);
    assert_eq!(decoded.rgb.get_pixel(15, 0).0, [100, 0, 128]);
}

#[test]
fn grayscale_becomes_three_equal_channels() {
    let grey = image::GrayImage::from_fn(16, 16, |x, _| image::Luma([(x * 16) as u8]));
    let bytes = encode(DynamicImage::ImageLuma8(grey), ImageFormat::Png);
    let decoded = decode_bytes(&bytes, &limits()).expect("grey decodes");
    assert_eq!(decoded.rgb.get_pixel(5, 3).0, [80, 80, 80]);
}

#[test]
fn alpha_png_is_composited_over_white() {
    let rgba = image::RgbaImage::from_fn(16, 16, |x, _| {
        if x < 8 {
            image::Rgba([0, 0, 0, 0])
        } else {
            image::Rgba([0, 0, 255, 255])
        }
    });
    let bytes = encode(DynamicImage::ImageRgba8(rgba), ImageFormat::Png);
    let decoded = decode_bytes(&bytes, &limits()).expect("RGBA decodes");
    assert_eq!(decoded.rgb.get_pixel(0, 0).0, [255, 255, 255]);
    assert_eq!(decoded.rgb.get_pixel(12, 0).0, [0, 0, 255]);
}

#[test]
fn animated_gif_uses_its_first_frame() {
    let decoded = decode_bytes(&animated_gif(), &limits()).expect("GIF decodes");
    assert_eq!(decoded.format, "gif");
    let [r, g, _] = decoded.rgb.get_pixel(8, 8).0;
    assert!(r > 200 && g < 60, "first (red) frame expected, got {r},{g}");
}

#[test]
fn exif_rotated_jpeg_is_turned_upright() {
    // Stored 40×20 with orientation 6 ("rotate 90° clockwise to view"): shown 20×40 with the
    // stored left (red) half on top.
    let bytes = with_exif_orientation(&jpeg(40, 20), 6);
    let decoded = decode_bytes(&bytes, &limits()).expect("EXIF JPEG decodes");
    assert!(decoded.reoriented);
    assert_eq!(decoded.rgb.dimensions(), (20, 40));
    let top = decoded.rgb.get_pixel(10, 5).0;
    let bottom = decoded.rgb.get_pixel(10, 35).0;
    assert!(top[0] > 150 && top[2] < 100, "top should be red: {top:?}");
    assert!(bottom[2] > 150 && bottom[0] < 100, "bottom should be blue: {bottom:?}");

    let plain = decode_bytes(&jpeg(40, 20), &limits()).unwrap();
    assert!(!plain.reoriented);
    assert_eq!(plain.rgb.dimensions(), (40, 20));
}

#[test]
fn one_pixel_png_is_too_small() {
    let bytes = encode(
        DynamicImage::ImageRgb8(RgbImage::new(1, 1)),
        ImageFormat::Png,
    );
    let err = decode_bytes(&bytes, &limits()).unwrap_err();
    assert!(
        matches!(err, DecodeError::TooSmall { width: 1, height: 1, min_side: 8 }),
        "{err}"
    );
}

#[test]
fn webp_decodes() {
    let decoded = decode_bytes(&webp_lossless(), &limits()).expect("WebP decodes");
    assert_eq!(decoded.format, "webp");
    assert_eq!(decoded.rgb.dimensions(), (24, 12));
    assert_eq!(decoded.rgb.get_pixel(2, 2).0, [220, 20, 20]);
}

#[test]
fn unsupported_format_is_named() {
    // A minimal valid-looking ICO/TGA is awkward; OpenEXR's magic number is enough for detection.
    let exr = [0x76, 0x2f, 0x31, 0x01, 2, 0, 0, 0, 0, 0, 0, 0];
    let err = decode_bytes(&exr, &limits()).unwrap_err();
    assert!(matches!(err, DecodeError::UnsupportedFormat { .. }), "{err}");
}

#[test]
fn good_file_reports_hash_and_size() {
    let bytes = jpeg(16, 16);
    let decoded = decode_bytes(&bytes, &limits()).unwrap();
    assert_eq!(decoded.byte_len, bytes.len() as u64);
    assert_eq!(decoded.sha256.len(), 64);
    assert_eq!(decoded.sha256, atelier_vision::decode::sha256_hex(&bytes));
    // FIPS 180-2 test vector.
    assert_eq!(
        atelier_vision::decode::sha256_hex(b"abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

#[test]
fn truncated_png_is_refused_as_truncated() {
    let noisy = RgbImage::from_fn(64, 64, |x, y| Rgb([(x * 7 + y) as u8, (y * 3) as u8, 9]));
    let full = encode(DynamicImage::ImageRgb8(noisy), ImageFormat::Png);
    let err = decode_bytes(&full[..full.len() / 2], &limits()).unwrap_err();
    assert!(
        matches!(err, DecodeError::Truncated { format: "png" }),
        "{err}"
    );
}
