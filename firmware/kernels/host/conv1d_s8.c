/* dtm_conv1d_s8 (host set, AVX2): the reference kernel's results, computed
 * by the packed int16 core of host_gemm.c. */
#include "ditmos_host_gemm.h"
#include "ditmos_kernels.h"

void dtm_conv1d_s8(const dtm_conv1d_s8_params_t *params,
                   const int8_t *const inputs[], int8_t *output)
{
    dtm_host_layer_t l;
    l.num_parts = params->num_parts;
    for (int32_t p = 0; p < params->num_parts; ++p) {
        l.channels[p] = params->parts[p].channels;
        l.input_offset[p] = params->parts[p].input_offset;
    }
    l.in_len = params->in_len;
    l.out_len = params->out_len;
    l.out_channels = params->out_channels;
    l.kernel_size = params->kernel_size;
    l.stride = params->stride;
    l.pad = params->pad;
    l.weights = params->weights;
    l.bias = params->bias;
    l.multiplier = params->multiplier;
    l.shift = params->shift;
    l.per_channel = 1;
    l.output_offset = params->output_offset;
    l.act_min = params->act_min;
    l.act_max = params->act_max;
    dtm_host_conv(params, &l, inputs, output);
}
