//! Thumbnails, made on first request and kept on disk (`<cache>/<id[0..2]>/<id>-<side>.jpg`,
//! written under a temporary name and renamed, so a half-written file is never served).

use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::ImageFormat;

use crate::error::WebError;

/// Longest side of a thumbnail in pixels (grids show them at 160 px; 2x for sharp screens).
pub const THUMBNAIL_SIDE: u32 = 320;

fn cached_path(cache: &Path, image_id: &str) -> PathBuf {
    let shard = &image_id[..image_id.len().min(2)];
    cache
        .join(shard)
        .join(format!("{image_id}-{THUMBNAIL_SIDE}.jpg"))
}

/// The cached thumbnail of catalogue image `image_id`, if one was made.
pub fn cached(cache: &Path, image_id: &str) -> Option<Vec<u8>> {
    std::fs::read(cached_path(cache, image_id)).ok()
}

/// The JPEG thumbnail of catalogue image `image_id`, whose file holds `original`: from the
/// cache, or made and cached.
pub fn thumbnail(cache: &Path, image_id: &str, original: &[u8]) -> Result<Vec<u8>, WebError> {
    if let Some(bytes) = cached(cache, image_id) {
        return Ok(bytes);
    }
    let path = cached_path(cache, image_id);
    let picture = image::load_from_memory(original).map_err(|e| {
        WebError::NotFound(format!(
            "image {image_id} cannot be decoded ({e}); `atelier check` quarantines such files"
        ))
    })?;
    let small = picture.thumbnail(THUMBNAIL_SIDE, THUMBNAIL_SIDE).to_rgb8();
    let mut bytes = Vec::new();
    small
        .write_to(&mut Cursor::new(&mut bytes), ImageFormat::Jpeg)
        .map_err(|e| WebError::Internal(format!("cannot encode a thumbnail: {e}")))?;
    // The cache is an optimisation: failing to write it must not fail the request.
    if let Some(folder) = path.parent()
        && std::fs::create_dir_all(folder).is_ok()
    {
        let temporary = path.with_extension(format!("tmp{}", std::process::id()));
        if std::fs::write(&temporary, &bytes).is_ok() && std::fs::rename(&temporary, &path).is_err()
        {
            let _ = std::fs::remove_file(&temporary);
        }
    }
    Ok(bytes)
}

/// The content type of an original image file, from its first bytes.
pub fn content_type(bytes: &[u8]) -> &'static str {
    match image::guess_format(bytes) {
        Ok(ImageFormat::Jpeg) => "image/jpeg",
        Ok(ImageFormat::Png) => "image/png",
        Ok(ImageFormat::Gif) => "image/gif",
        Ok(ImageFormat::WebP) => "image/webp",
        Ok(ImageFormat::Bmp) => "image/bmp",
        Ok(ImageFormat::Tiff) => "image/tiff",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbnails_fit_the_side_and_are_cached() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("wide.png");
        image::RgbImage::from_pixel(640, 320, image::Rgb([200, 10, 10]))
            .save(&source)
            .unwrap();
        let original = std::fs::read(&source).unwrap();
        let cache = dir.path().join("cache");
        let id = "ab".repeat(32);
        assert_eq!(cached(&cache, &id), None);
        let bytes = thumbnail(&cache, &id, &original).unwrap();
        let small = image::load_from_memory(&bytes).unwrap();
        assert_eq!(
            (small.width(), small.height()),
            (THUMBNAIL_SIDE, THUMBNAIL_SIDE / 2)
        );
        assert_eq!(content_type(&bytes), "image/jpeg");
        // Served from the cache afterwards.
        assert_eq!(cached(&cache, &id), Some(bytes.clone()));
        assert_eq!(thumbnail(&cache, &id, b"not an image").unwrap(), bytes);
        assert!(matches!(
            thumbnail(&cache, &"cd".repeat(32), b"not an image"),
            Err(WebError::NotFound(_))
        ));
    }
}
