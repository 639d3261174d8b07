//! The default Matryoshka dims ladder of a model.

/// The nested dims of a model of width `hidden_size`: every power of two from 8 that is below
/// the hidden size, then the hidden size itself, ascending — `384` gives
/// `[8, 16, 32, 64, 128, 256, 384]`, `768` gives `[8, …, 512, 768]`. A hidden size of 8 or less
/// gives `[hidden_size]`.
pub fn nested_dims(hidden_size: usize) -> Vec<usize> {
    let mut dims: Vec<usize> = std::iter::successors(Some(8usize), |p| p.checked_mul(2))
        .take_while(|&p| p < hidden_size)
        .collect();
    dims.push(hidden_size);
    dims
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ladders_of_common_hidden_sizes() {
        assert_eq!(nested_dims(384), [8, 16, 32, 64, 128, 256, 384]);
        assert_eq!(nested_dims(576), [8, 16, 32, 64, 128, 256, 512, 576]);
        assert_eq!(nested_dims(768), [8, 16, 32, 64, 128, 256, 512, 768]);
        assert_eq!(nested_dims(1024), [8, 16, 32, 64, 128, 256, 512, 1024]);
    }

    #[test]
    fn small_widths_give_only_the_width() {
        assert_eq!(nested_dims(8), [8]);
        assert_eq!(nested_dims(4), [4]);
        assert_eq!(nested_dims(9), [8, 9]);
    }
}
