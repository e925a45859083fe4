//! The corrupt-file battery: every kind of broken or unusual file a catalogue meets, built here
//! from scratch, with the outcome each must have.

use std::path::Path;

use atelier_vision::battery::*;
use atelier_vision::decode::{DecodeError, DecodeLimits, decode_bytes, decode_file};
use image::{DynamicImage, ImageFormat, Rgb, RgbImage};

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
    assert!(
        err.to_string().contains("no known image signature"),
        "{err}"
    );
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
        Err(DecodeError::TooLarge {
            width: 64,
            height: 48,
            ..
        })
    ));
    assert!(decode_bytes(&jpeg(32, 16), &small_limits).is_ok());
}

#[test]
fn cmyk_jpeg_becomes_rgb_with_the_right_colour() {
    let decoded = decode_bytes(&cmyk_cyan_jpeg(), &limits()).expect("CMYK decodes");
    assert_eq!(decoded.rgb.dimensions(), (32, 16));
    let [r, g, b] = decoded.rgb.get_pixel(16, 8).0;
    assert!(
        r < 80 && g > 150 && b > 150,
        "cyan expected, got {r},{g},{b}"
    );
}

#[test]
fn sixteen_bit_png_is_scaled_to_eight_bits() {
    let decoded = decode_bytes(&sixteen_bit_png(), &limits()).expect("16-bit PNG decodes");
    assert_eq!(decoded.format, "png");
    assert_eq!(decoded.rgb.get_pixel(0, 0).0, [255, 0, 128]);
    assert_eq!(decoded.rgb.get_pixel(15, 0).0, [100, 0, 128]);
}

#[test]
fn grayscale_becomes_three_equal_channels() {
    let decoded = decode_bytes(&grey_png(), &limits()).expect("grey decodes");
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
    assert!(
        bottom[2] > 150 && bottom[0] < 100,
        "bottom should be blue: {bottom:?}"
    );

    let plain = decode_bytes(&jpeg(40, 20), &limits()).unwrap();
    assert!(!plain.reoriented);
    assert_eq!(plain.rgb.dimensions(), (40, 20));
}

#[test]
fn one_pixel_png_is_too_small() {
    let err = decode_bytes(&one_pixel_png(), &limits()).unwrap_err();
    assert!(
        matches!(
            err,
            DecodeError::TooSmall {
                width: 1,
                height: 1,
                min_side: 8
            }
        ),
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
    assert!(
        matches!(err, DecodeError::UnsupportedFormat { .. }),
        "{err}"
    );
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

#[test]
fn every_battery_case_has_its_expected_outcome() {
    let dir = tempfile::tempdir().unwrap();
    for case in battery() {
        let path = dir.path().join(case.file_name);
        std::fs::write(&path, &case.bytes).unwrap();
        let outcome = decode_file(&path, &limits());
        match (case.expected, outcome) {
            (Expected::Usable { width, height }, Ok(decoded)) => {
                assert_eq!(
                    decoded.rgb.dimensions(),
                    (width, height),
                    "{}",
                    case.file_name
                )
            }
            (Expected::Quarantined(reason), Err(err)) => assert!(
                err.to_string().contains(reason),
                "{}: {err} should contain {reason:?}",
                case.file_name
            ),
            (expected, outcome) => {
                panic!("{}: expected {expected:?}, got {outcome:?}", case.file_name)
            }
        }
    }
}
