/* Host program run by `ditmos build`: the model's answers to a few inputs,
 * with the reference kernels, recorded in manifest.json ("known_answers") for
 * the hardware check `ditmos selftest` (the device must give the same
 * answers; the Cortex-M7 kernels are bit-exact with the reference ones).
 *
 * usage: ditmos_known_answer HEX...  (each: DITMOS_INPUT_SIZE int8 values as hex bytes)
 * prints one line per input: predicted route score0 score1 ...
 */
#include <stdio.h>
#include <string.h>

#include "model.h"

void ditmos_profile_layer(uint16_t layer_index) { (void)layer_index; }

static int nibble(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

int main(int argc, char **argv)
{
    static int8_t input[DITMOS_INPUT_SIZE];
    ditmos_result_t result;

    if (argc < 2) return 2;
    for (int a = 1; a < argc; ++a) {
        const char *hex = argv[a];
        if (strlen(hex) != 2u * DITMOS_INPUT_SIZE) return 2;
        for (size_t i = 0; i < DITMOS_INPUT_SIZE; ++i) {
            int hi = nibble(hex[2 * i]), lo = nibble(hex[2 * i + 1]);
            if (hi < 0 || lo < 0) return 2;
            input[i] = (int8_t)(uint8_t)(hi * 16 + lo);
        }
        if (ditmos_infer(input, &result) != 0) return 3;
        printf("%u %u", (unsigned)result.predicted, (unsigned)result.route);
        for (unsigned i = 0; i < DITMOS_NUM_CLASSES; ++i) printf(" %d", (int)result.scores[i]);
        printf("\n");
    }
    return 0;
}
