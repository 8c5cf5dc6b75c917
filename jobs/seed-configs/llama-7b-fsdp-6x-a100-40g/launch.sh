#!/usr/bin/env bash
# Written by shardsim export from job llama-7b-fsdp-6x-a100-40g (strategy fsdp-full-shard, model llama-7b, topology 6x-a100-40g).
# train.py: your Hugging Face Trainer script (it takes the TrainingArguments flags below).
# Multi-node: run on every node with --node_rank / --machine_rank and the rendezvous of your cluster.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
accelerate launch --config_file "$HERE/accelerate_config.yaml" train.py --per_device_train_batch_size 1 --gradient_accumulation_steps 4 --bf16 true --learning_rate 1e-4 --optim adamw_torch --adam_beta1 0.9 --adam_beta2 0.999 --adam_epsilon 1e-8 --weight_decay 0 --seed 1234 --max_seq_length 512 --accelerator_config '{"gradient_accumulation_kwargs": {"sync_each_batch": true}}'

# Where each value came from (shardsim key = value (file:line)):
#   --per_device_train_batch_size = 1  <- batch.micro_batch = 1 (<jobs/llama-7b-fsdp-6x-a100-40g.ini>:34)
#   --gradient_accumulation_steps = 4  <- batch.grad_accum = 4 (<jobs/llama-7b-fsdp-6x-a100-40g.ini>:35)
#   --bf16 = true  <- precision.params = bf16 (<jobs/llama-7b-fsdp-6x-a100-40g.ini>:26)
#   --learning_rate = 1e-4  <- optimizer.lr = 1e-4 (<jobs/llama-7b-fsdp-6x-a100-40g.ini>:31)
#   --optim = adamw_torch  <- optimizer.name = adamw (<jobs/llama-7b-fsdp-6x-a100-40g.ini>:30)
#   --adam_beta1 = 0.9  <- optimizer.beta1 = 0.9 (default)
#   --adam_beta2 = 0.999  <- optimizer.beta2 = 0.999 (default)
#   --adam_epsilon = 1e-8  <- optimizer.eps = 1e-8 (default)
#   --weight_decay = 0  <- optimizer.weight_decay = 0 (default)
#   --seed = 1234  <- job.seed = 1234 (default)
#   --max_seq_length = 512  <- batch.seq_len = 512 (<jobs/llama-7b-fsdp-6x-a100-40g.ini>:36)
#   --accelerator_config = {"gradient_accumulation_kwargs": {"sync_each_batch": true}}  <- fsdp.no_sync = false (default)
#   accelerate_config.yaml distributed_type = FSDP  <- parallel.strategy = fsdp-full-shard (<jobs/llama-7b-fsdp-6x-a100-40g.ini>:23)
#   accelerate_config.yaml mixed_precision = bf16  <- precision.params = bf16 (<jobs/llama-7b-fsdp-6x-a100-40g.ini>:26)
#   accelerate_config.yaml num_machines = 1  <- topology.cluster.nodes (topology 6x-a100-40g)
#   accelerate_config.yaml num_processes = 6  <- topology.cluster.gpus_per_node (topology 6x-a100-40g)
#   accelerate_config.yaml fsdp_sharding_strategy = FULL_SHARD  <- parallel.strategy = fsdp-full-shard (<jobs/llama-7b-fsdp-6x-a100-40g.ini>:23)
#   accelerate_config.yaml fsdp_backward_prefetch = BACKWARD_PRE  <- fsdp.backward_prefetch = backward_pre (default)
#   accelerate_config.yaml fsdp_forward_prefetch = false  <- fsdp.forward_prefetch = false (default)
#   accelerate_config.yaml fsdp_limit_all_gathers = true  <- fsdp.limit_all_gathers = true (default)
#   accelerate_config.yaml fsdp_offload_params = false  <- memory.offload_params = false (<jobs/llama-7b-fsdp-6x-a100-40g.ini>:41)
#   accelerate_config.yaml fsdp_activation_checkpointing = false  <- memory.activation_checkpointing = false (<jobs/llama-7b-fsdp-6x-a100-40g.ini>:39)
# Not in these files: the model and what it is given (job.model = llama-7b, lora.*, memory.attention, memory.loss, dropout.*) belong to train.py.
