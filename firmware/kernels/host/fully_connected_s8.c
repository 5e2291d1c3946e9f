/* dtm_fully_connected_s8 (host set, AVX2): a 1-tap convolution over the
 * batch rows, by the packed int16 core of host_gemm.c. */
#include "ditmos_host_gemm.h"
#include "ditmos_kernels.h"

void dtm_fully_connected_s8(const dtm_fully_connected_s8_params_t *params,
                            const int8_t *input, int8_t *output)
{
    dtm_host_layer_t l;
    const int8_t *const inputs[] = { input };
    l.num_parts = 1;
    l.channels[0] = params->in_features;
    l.input_offset[0] = params->input_offset;
    l.in_len = params->batches;
    l.out_len = params->batches;
    l.out_channels = params->out_features;
    l.kernel_size = 1;
    l.stride = 1;
    l.pad = 0;
    l.weights = params->weights;
    l.bias = params->bias;
    l.multiplier = params->multiplier;
    l.shift = params->shift;
    l.per_channel = params->per_channel;
    l.output_offset = params->output_offset;
    l.act_min = params->act_min;
    l.act_max = params->act_max;
    dtm_host_conv(params, &l, inputs, output);
}
