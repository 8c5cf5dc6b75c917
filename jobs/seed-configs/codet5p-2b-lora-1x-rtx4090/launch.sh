#!/usr/bin/env bash
# Written by shardsim export from job codet5p-2b-lora-1x-rtx4090 (strategy ddp, model codet5p-2b, topology 1x-rtx4090-24g).
# train.py: your Hugging Face Trainer script (it takes the TrainingArguments flags below).
# Multi-node: run on every node with --node_rank / --machine_rank and the rendezvous of your cluster.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
accelerate launch --config_file "$HERE/accelerate_config.yaml" train.py --per_device_train_batch_size 1 --gradient_accumulation_steps 8 --fp16 true --learning_rate 3e-4 --optim adamw_torch --adam_beta1 0.9 --adam_beta2 0.999 --adam_epsilon 1e-8 --weight_decay 0 --seed 1234 --max_seq_length 1024

# Where each value came from (shardsim key = value (file:line)):
#   --per_device_train_batch_size = 1  <- batch.micro_batch = 1 (<jobs/codet5p-2b-lora-1x-rtx4090.ini>:35)
#   --gradient_accumulation_steps = 8  <- batch.grad_accum = 8 (<jobs/codet5p-2b-lora-1x-rtx4090.ini>:36)
#   --fp16 = true  <- precision.params = fp16 (<jobs/codet5p-2b-lora-1x-rtx4090.ini>:27)
#   --learning_rate = 3e-4  <- optimizer.lr = 3e-4 (<jobs/codet5p-2b-lora-1x-rtx4090.ini>:32)
#   --optim = adamw_torch  <- optimizer.name = adamw (<jobs/codet5p-2b-lora-1x-rtx4090.ini>:31)
#   --adam_beta1 = 0.9  <- optimizer.beta1 = 0.9 (default)
#   --adam_beta2 = 0.999  <- optimizer.beta2 = 0.999 (default)
#   --adam_epsilon = 1e-8  <- optimizer.eps = 1e-8 (default)
#   --weight_decay = 0  <- optimizer.weight_decay = 0 (default)
#   --seed = 1234  <- job.seed = 1234 (default)
#   --max_seq_length = 1024  <- batch.seq_len = 1024 (<jobs/codet5p-2b-lora-1x-rtx4090.ini>:37)
#   accelerate_config.yaml distributed_type = NO  <- parallel.strategy = ddp (<jobs/codet5p-2b-lora-1x-rtx4090.ini>:24)
#   accelerate_config.yaml mixed_precision = fp16  <- precision.params = fp16 (<jobs/codet5p-2b-lora-1x-rtx4090.ini>:27)
#   accelerate_config.yaml num_machines = 1  <- topology.cluster.nodes (topology 1x-rtx4090-24g)
#   accelerate_config.yaml num_processes = 1  <- topology.cluster.gpus_per_node (topology 1x-rtx4090-24g)
# Not in these files: the model and what it is given (job.model = codet5p-2b, lora.*, memory.attention, memory.loss, dropout.*) belong to train.py.
